# One image for every smsgw process: api, relay, worker, webhooks, operator-sim, migrate.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

COPY pyproject.toml README.md ./
COPY src ./src
# /var/lib/smsgw: the webhook sealing key's file when SMSGW_WEBHOOK_KEY is unset (a volume
# shared by the api and webhooks containers in docker-compose.yml).
RUN pip install . && useradd --system --no-create-home smsgw \
    && mkdir -p /var/lib/smsgw && chown smsgw /var/lib/smsgw

USER smsgw
EXPOSE 8080
ENTRYPOINT ["smsgw"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
