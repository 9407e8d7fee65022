# One image for every smsgw process: api, relay, worker, operator-sim, migrate.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install . && useradd --system --no-create-home smsgw

USER smsgw
EXPOSE 8080
ENTRYPOINT ["smsgw"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
