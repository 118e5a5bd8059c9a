# tinbao as a container: `docker build -t tinbao .` (compose.yaml builds it too).
# Secrets (keyring, tokens, the database URL) are mounted files, never layers of this image.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# A fixed uid, so the operator can give it the keyring file on the host (chown 10001 keyring.json).
RUN useradd --system --uid 10001 --user-group --home-dir /srv/tinbao --create-home tinbao \
    && install -d -o tinbao -g tinbao -m 0700 /data
WORKDIR /srv/tinbao
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY handlers ./handlers
COPY storage ./storage
RUN pip install . && rm -rf bot handlers storage build
COPY --chmod=0755 deploy/entrypoint.sh /usr/local/bin/tinbao-entrypoint

# config.toml (made by `tinbao init`, then edited) is mounted read-only; the data folder is a volume.
ENV TINBAO_CONFIG=/etc/tinbao/config.toml \
    TINBAO_DATA_DIR=/data \
    TINBAO_KEYRING=/run/secrets/tinbao_keyring
VOLUME ["/data"]
USER tinbao
EXPOSE 8080
# /healthz answers 200 while the database answers and the keyring is loaded (webhook listener, port 8080).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status != 200)"]
ENTRYPOINT ["tinbao-entrypoint"]
CMD ["run", "--webhook"]
