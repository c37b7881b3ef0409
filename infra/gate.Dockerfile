# The migration gate's tools image (kubernetes platform): shipshape, its tasks and the SQL
# tree, to run `invoke deploy --env <profile>` and `python -m shipshape.pulumi_gate.gate app-login`
# inside the cluster (infra/components/kubernetes/gate.py). The app image cannot: app/
# imports nothing from shipshape. The SQL tree is baked in, so the image's digest says
# which migrations the gate applies; dev builds it, staging and prod run dev's digest.
#   docker build -f infra/gate.Dockerfile -t shipshape-gate .
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/tmp \
    SHIPSHAPE_STATE_DIR=/tmp/shipshape

WORKDIR /srv

# shipshape itself first: rebuilt only when the package or its dependencies change.
COPY pyproject.toml README.md /srv/
COPY shipshape/ /srv/shipshape/
RUN pip install /srv && rm -rf /srv/build

# The SQL tree and the tasks. No Pulumi.*.yaml: the Job passes the stack's settings as
# SHIPSHAPE_<SETTING> variables, so no stack file in the image can disagree with them.
COPY sql/ /srv/sql/
COPY tasks.py /srv/tasks.py
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin gate

USER 10001:10001
CMD ["invoke", "--list"]
