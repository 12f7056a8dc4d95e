# EvalSign service image: slim Python, non-root, the same pinned install as `make run`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    EVALSIGN_DATA_DIR=/data \
    EVALSIGN_HOST=0.0.0.0 \
    EVALSIGN_PORT=8000

RUN groupadd --system evalsign && useradd --system --gid evalsign --home /app evalsign

# Noto Sans CJK draws the Chinese text of visible signature stamps.
RUN apt-get update \
    && apt-get install -y --no-install-recommends fonts-noto-cjk \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY api ./api
COPY evaluation ./evaluation
COPY face ./face
COPY models ./models
COPY signing ./signing
# insightface without its declared opencv-python: only the headless OpenCV build belongs in
# a slim image (no libGL); pyproject.toml lists insightface's real needs.
RUN pip install -c constraints.txt . \
    && pip install --no-deps -c constraints.txt insightface==2.1 \
    && python -c "import importlib.metadata as m, cv2; m.distribution('opencv-python-headless')" \
    && ! pip show opencv-python >/dev/null 2>&1 \
    && mkdir -p /data && chown evalsign:evalsign /data

USER evalsign
VOLUME ["/data"]
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"

# init is idempotent: it migrates, creates the first center once, and prints the tokens.
CMD ["sh", "-c", "evalsign init && exec evalsign serve"]
