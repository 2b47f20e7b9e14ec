# Stand-ins for prom/prometheus:v2.42.0 and prom/alertmanager:v0.25.0, which cannot be
# pulled here: Debian 12's prometheus (2.42) and prometheus-alertmanager (0.25) laid out
# as the official images are (their Dockerfiles in prometheus/prometheus and
# prometheus/alertmanager at those tags): the binary at /bin/<name>, the config under
# /etc/<name>, the data directory as the working directory and a volume, user nobody,
# and busybox's wget, which the official busybox base has and the compose healthchecks call.
# Built by test/helpers/images.ts from a debootstrap'd Debian (BASE).
ARG BASE
FROM ${BASE} AS debian-prometheus
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      prometheus prometheus-alertmanager busybox-static \
 && rm -rf /var/lib/apt/lists/* \
 && ln -s busybox /usr/bin/wget

FROM debian-prometheus AS prometheus
# /usr/bin/prometheus is /bin/prometheus: Debian 12's /bin is /usr/bin.
RUN mkdir -p /prometheus /etc/prometheus && chown -R 65534:65534 /etc/prometheus /prometheus
WORKDIR /prometheus
USER nobody
EXPOSE 9090
VOLUME ["/prometheus"]
ENTRYPOINT ["/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]

FROM debian-prometheus AS alertmanager
# Debian names the binary prometheus-alertmanager; the official image has /bin/alertmanager.
RUN ln -s prometheus-alertmanager /usr/bin/alertmanager \
 && mkdir -p /alertmanager /etc/alertmanager \
 && chown -R 65534:65534 /etc/alertmanager /alertmanager
WORKDIR /alertmanager
USER nobody
EXPOSE 9093
VOLUME ["/alertmanager"]
ENTRYPOINT ["/bin/alertmanager"]
CMD ["--config.file=/etc/alertmanager/alertmanager.yml", "--storage.path=/alertmanager"]
