# One image for every process of the mesh; the command picks which (compose/stack.yaml takes
# them from supervisord.conf). Build from the repository root:
#   docker build -t mesh:latest --build-arg TORCH_INDEX_URL=<PyTorch's CPU wheel index> .
FROM python:3.11-slim

# torch is the one dependency with a build per accelerator, and the mesh only ever runs it on
# the CPU. Left empty, pip takes torch from its default index, which for Linux x86-64 is the
# CUDA build (several GB of GPU libraries that go unused): set TORCH_INDEX_URL to PyTorch's
# CPU-only wheel index (compose/README.md). TORCH_VERSION must equal the pin in pyproject.toml.
ARG TORCH_INDEX_URL=""
ARG TORCH_VERSION=2.13.0

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MESH_VAR_DIR=/var/lib/mesh

WORKDIR /app

RUN if [ -n "$TORCH_INDEX_URL" ]; then \
        pip install "torch==${TORCH_VERSION}" --index-url "$TORCH_INDEX_URL"; \
    else \
        pip install "torch==${TORCH_VERSION}"; \
    fi

# The pinned dependencies in a layer of their own, so that a code change reinstalls nothing.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# Editable, so that the alembic migrations (not packages) and the config files the commands
# name (mesh/nameko.yaml, gateway/gunicorn_conf.py) are used from /app as they are in the repo.
COPY contracts ./contracts
COPY mesh ./mesh
COPY services ./services
COPY gateway ./gateway
RUN pip install --no-deps --no-build-isolation -e .

# Never root at run time. MESH_VAR_DIR holds uploads (a volume shared by the gateway and the
# workers), metrics files and whatever else a process writes.
RUN useradd --system --uid 10001 --home-dir /var/lib/mesh --shell /usr/sbin/nologin mesh \
    && mkdir -p /var/lib/mesh/uploads /var/lib/mesh/run /var/lib/mesh/mail \
    && chown -R mesh:mesh /var/lib/mesh
USER mesh

CMD ["mesh", "--help"]
