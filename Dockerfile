# attach-fhir, production image: gunicorn serving smart_app.wsgi:create() (docs/deployment.md).
# Slim, non-root, no build tools in the final image; settings come from ATTACH_* variables and
# secrets from mounted files (ATTACH_TOKEN_KEY_FILE, the registrations' key and secret files).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
COPY smart_app ./smart_app
COPY ehr_sandbox ./ehr_sandbox
COPY questionnaires ./questionnaires
RUN python -m venv /opt/attach && /opt/attach/bin/pip install --no-cache-dir ".[production]"

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/attach-fhir --create-home attach
COPY --from=build /opt/attach /opt/attach
COPY deploy/gunicorn.conf.py /etc/attach-fhir/gunicorn.conf.py
ENV PATH=/opt/attach/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    ATTACH_DATA_DIR=/var/lib/attach-fhir \
    ATTACH_BIND=0.0.0.0:8000
USER attach
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
CMD ["gunicorn", "smart_app.wsgi:create()", "-c", "/etc/attach-fhir/gunicorn.conf.py"]
