# syntax=docker/dockerfile:1
# Stand-ins for the official postgres and redis images in the CI run of docker-compose.yaml
# (deploy/images/compose-ci.yaml), where no image registry is reachable: the same services from
# Debian 12's packages on the base that build-base.sh makes. Postgres is 15, the major the worker
# image's pg_dump/pg_restore are made for. Test scaffolding only; never pushed. Build context:
# deploy/images (deploy/images/build.sh builds them).
ARG BASE_IMAGE=debian:bookworm-slim

FROM ${BASE_IMAGE} AS postgres
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-15 \
    && rm -rf /var/lib/apt/lists/* \
    && install -d -o postgres -g postgres -m 0700 /var/lib/postgresql/data
COPY postgres-standin.sh /usr/local/bin/postgres-standin
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data
# hadolint ignore=DL3066
USER postgres
EXPOSE 5432
ENTRYPOINT ["/bin/sh", "/usr/local/bin/postgres-standin"]

FROM ${BASE_IMAGE} AS redis
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends redis-server redis-tools \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /data
RUN chown redis:redis /data
# hadolint ignore=DL3066
USER redis
EXPOSE 6379
CMD ["redis-server", "--protected-mode", "no"]
