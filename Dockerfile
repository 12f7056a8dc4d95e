# EvalSign service image, in two stages: wheels are built where compilers are, and the final
# image holds only Python, the installed wheels and the CJK font. Non-root; its command
# serves and nothing else (`evalsign migrate` / `evalsign init` run once per release, as a
# job of their own: see compose.yaml). No Docker engine ran on the machine this was written
# on: the file follows the same pinned install `make run` does, but was not built there.

# --- build: every dependency as a wheel, with the tools some of them compile with ---------
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY api ./api
COPY evaluation ./evaluation
COPY face ./face
COPY models ./models
COPY signing ./signing
# insightface without its declared opencv-python: only the headless OpenCV build belongs in
# a slim image (no libGL); pyproject.toml lists insightface's real needs.
RUN pip wheel --wheel-dir /wheels -c constraints.txt . \
    && pip wheel --wheel-dir /wheels --no-deps -c constraints.txt insightface==2.1

# --- run: no compiler, no pip cache, no source tree beyond the installed packages --------
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

COPY --from=build /wheels /wheels
RUN pip install --no-index --find-links /wheels evalsign \
    && pip install --no-index --no-deps --find-links /wheels insightface==2.1 \
    && python -c "import importlib.metadata as m, cv2; m.distribution('opencv-python-headless')" \
    && ! pip show opencv-python >/dev/null 2>&1 \
    && rm -rf /wheels \
    && mkdir -p /data && chown evalsign:evalsign /data

USER evalsign
WORKDIR /app
VOLUME ["/data"]
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=4).status != 200)"

# serve checks the model files' hashes and the schema before it listens, and stops on
# either; it never migrates (the `migrate` job of compose.yaml does, once).
CMD ["evalsign", "serve"]
