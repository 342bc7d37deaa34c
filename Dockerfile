# The warroom worker image used by docker-compose.yml.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY detectors ./detectors
COPY responders ./responders
COPY streams ./streams
COPY devtools ./devtools
RUN pip install --no-cache-dir . && useradd --system warroom && mkdir /data && chown warroom /data
USER warroom
EXPOSE 8080
CMD ["warroom", "worker"]
