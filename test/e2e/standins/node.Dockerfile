# Stand-in for the Node base the project's Dockerfile pins (NODE_IMAGE), which cannot be
# pulled here: Debian 13's nodejs (20.19) laid out as the official node image is — the npm
# bundled with a Node release under /usr/local (here the one of this machine's Node; Debian's
# own npm package would bring some 400 packages), Node's headers (libnode-dev: the official
# image has them under /usr/local/include/node; node-gyp builds the native addons against
# them instead of downloading them) and the unprivileged user `node` (uid/gid 1000, created
# as the official Dockerfile does).
# npm inside a build reaches the package registry only if it trusts this machine's CA
# bundle, so the bundle is copied in and named by NODE_EXTRA_CA_CERTS.
# Built by test/helpers/images.ts from a debootstrap'd Debian (BASE); its context holds
# npm/ and ca-certificates.crt.
ARG BASE
FROM ${BASE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nodejs libnode-dev \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 1000 node \
 && useradd --uid 1000 --gid node --shell /bin/bash --create-home node
COPY npm /usr/local/lib/node_modules/npm
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx
COPY ca-certificates.crt /usr/local/share/lookout-test/ca-certificates.crt
ENV NODE_EXTRA_CA_CERTS=/usr/local/share/lookout-test/ca-certificates.crt
CMD ["node"]
