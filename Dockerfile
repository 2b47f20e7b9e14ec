# lookout exporter image. Build: docker build -t lookout .   (docker-compose.yml does this)
# Three stages so the runtime image holds only dist/, production node_modules (with
# better-sqlite3's addon built), the timex addon, package.json, the launcher, the runbooks
# page and the AI price table: no TypeScript, no dev dependencies, no npm cache, no
# sources, no compiler.
# NODE_IMAGE is the current Node LTS line (26, LTS since October 2026); any Node >= 20 runs lookout.
ARG NODE_IMAGE=node:26-trixie-slim

# ---- build: compile TypeScript to dist/
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: no dependency needs an install script to compile lookout.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
RUN npm run build

# ---- deps: production dependencies only, from the same lockfile, and the two native
# addons compiled for this image's Node: better-sqlite3 (the aicost collector's store and
# `lookout cost`) and native/timex (the timex collector). The compiler stays in this stage.
FROM ${NODE_IMAGE} AS deps
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
COPY scripts/build-native.mjs ./scripts/
COPY native/timex/binding.gyp native/timex/timex.c ./native/timex/
# --ignore-scripts, then the two builds by name: a plain `npm ci` would also run the root
# package's `prepare` (tsc, a dev dependency). better-sqlite3's own build-release script is
# node-gyp alone: it compiles here rather than trying to download a prebuilt binary.
# nodedir: the headers of the image's own Node (under its prefix), so node-gyp downloads
# nothing. Both through `npm run`, which hands node-gyp to the script. build-native.mjs
# never fails an install, so `test -f` makes a missing timex addon fail the build.
# Then only the built .node files are kept: not sqlite's sources, objects or archive.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && export npm_config_nodedir="$(node -p 'require("path").resolve(process.execPath, "../..")')" \
 && (cd node_modules/better-sqlite3 && npm run build-release) \
 && npm run build:native \
 && test -f native/timex/build/Release/timex.node \
 && cd node_modules/better-sqlite3 \
 && mv build/Release/better_sqlite3.node /tmp/ \
 && rm -rf build deps src binding.gyp \
 && mkdir -p build/Release \
 && mv /tmp/better_sqlite3.node build/Release/ \
 && node -e 'new (require("better-sqlite3"))(":memory:").prepare("select 1").get()' \
 && npm cache clean --force

# ---- runtime
FROM ${NODE_IMAGE}
ENV NODE_ENV=production
# lookout keeps what must survive a restart here (systemd's StateDirectory= sets the same
# variable); docker-compose.yml mounts the lookout-data volume on it.
ENV STATE_DIRECTORY=/var/lib/lookout
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
# Where src/collectors/timex.ts loads it from (dist/collectors/../../native/timex/...).
COPY --from=deps /app/native/timex/build/Release/timex.node ./native/timex/build/Release/timex.node
COPY --from=build /src/dist ./dist
COPY package.json ./
# bin/lookout holds the node flags (and UV_THREADPOOL_SIZE, glibc's malloc settings) for every way lookout runs.
COPY bin ./bin
# Served by lookout as its runbooks page.
COPY docs/runbooks.md ./docs/runbooks.md
# The AI price table the aicost collector and `lookout cost` price events with.
COPY pricing ./pricing
COPY deploy/compose/lookout.yml /etc/lookout/lookout.yml
# The node image's unprivileged user (uid 1000). lookout needs no root: it reads
# world-readable /proc and /sys files and listens on a port above 1023. The state
# directory is created here, owned by that user, so a fresh named volume mounted on it
# takes the same owner (Docker copies the image's directory into an empty volume).
RUN mkdir -p /var/lib/lookout && chown node:node /var/lib/lookout
USER node
EXPOSE 10142
# No curl or wget in slim images; node's own fetch does the probe.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:10142/healthz',{signal:AbortSignal.timeout(4000)}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["/app/bin/lookout"]
CMD ["serve", "--config", "/etc/lookout/lookout.yml"]
