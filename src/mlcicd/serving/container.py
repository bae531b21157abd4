"""``serve`` in a SageMaker inference container: the same supervisor and workers as locally.

    python -m mlcicd.serving.container [serve]

SageMaker starts the image with ``serve`` and expects ``GET /ping`` and ``POST
/invocations`` on port 8080. The settings come from the environment, as in SageMaker's
inference toolkit:

    SAGEMAKER_BIND_TO_PORT              port (8080); the host is 0.0.0.0
    SAGEMAKER_BASE_DIR                  /opt/ml; the model is extracted in <base>/model
    SM_MODEL_DIR                        the model directory itself (overrides the above)
    SAGEMAKER_SUBMIT_DIRECTORY          the code (default <base>/code, else <base>/model/code);
                                        an s3:// sourcedir.tar.gz is downloaded and extracted
                                        into <base>/code when that is missing or empty
    SAGEMAKER_REGION                    the region of that download (else AWS_REGION)
    SAGEMAKER_PROGRAM                   the inference script (inference.py)
    SAGEMAKER_MODEL_SERVER_WORKERS      workers (one per CPU)
    SAGEMAKER_MAX_PAYLOAD_IN_MB         request body limit (6)
    SAGEMAKER_MODEL_SERVER_TIMEOUT      seconds each worker may take to load the model (300)
    SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT  the answer type for a missing or */* Accept (JSON)
    MLCICD_MODEL_SHA256                 the model.tar.gz digest: the model is served only from
                                        an archive of that digest (mlcicd.serving.model_check)
    MLCICD_MODEL_DATA_URL               where that archive is, when the model dir has none
    MLCICD_MAX_MODEL_BYTES / _MEMBERS   caps on what the archive may unpack to (mlcicd.archive)
    LISTEN_FDS=1                        serve the listening socket on fd 3 instead of binding
                                        (systemd's socket activation; podman --preserve-fds):
                                        how mlcicd's container endpoints keep one address

The serving config goes to a scratch directory (``MLCICD_SERVE_DIR``, default a temporary
one); logs go to stderr, where SageMaker collects them. SIGTERM drains and exits 0.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from mlcicd.errors import MlcicdError
from mlcicd.fsutil import atomic_write_json
from mlcicd.serving.config import MAX_WORKERS, ServingConfig, VariantSpec
from mlcicd.serving.layout import CONFIG_FILE
from mlcicd.serving.logs import configure_logging
from mlcicd.serving.model_check import verified_model_dir
from mlcicd.serving.sockets import activated_socket
from mlcicd.serving.supervisor import Supervisor

DEFAULT_BASE_DIR = "/opt/ml"


def config_from_env(env: Mapping[str, str]) -> ServingConfig:
    """The serving config a SageMaker container's environment describes."""
    base = Path(env.get("SAGEMAKER_BASE_DIR", DEFAULT_BASE_DIR))
    model_dir = model_dir_from_env(env)
    code_dir = env.get("SAGEMAKER_SUBMIT_DIRECTORY")
    if not code_dir or code_dir.startswith("s3://"):
        # The SDK packs source_dir into model.tar.gz under code/ when it cannot be fetched here.
        code_dir = str(
            next((p for p in (base / "code", model_dir / "code") if p.is_dir()), base / "code")
        )
    # One per CPU by default, within what one endpoint runs (a 96-CPU instance gets 32).
    cpus = min(os.cpu_count() or 1, MAX_WORKERS)
    workers = int(env.get("SAGEMAKER_MODEL_SERVER_WORKERS") or cpus)
    payload_mb = float(env.get("SAGEMAKER_MAX_PAYLOAD_IN_MB") or 6)
    variant = VariantSpec(
        name=env.get("SAGEMAKER_VARIANT_NAME", "AllTraffic"),
        model_dir=str(model_dir),
        code_dir=code_dir,
        entry_point=env.get("SAGEMAKER_PROGRAM") or "inference.py",
        python=sys.executable,
    )
    return ServingConfig(
        name="container",
        variants=(variant,),
        endpoint_name=None,  # SageMaker routes by endpoint before the container: accept any name
        host="0.0.0.0",
        port=int(env.get("SAGEMAKER_BIND_TO_PORT") or 8080),
        workers=workers,
        startup_timeout=float(env.get("SAGEMAKER_MODEL_SERVER_TIMEOUT") or 300),
        max_payload_bytes=int(payload_mb * 1024 * 1024),
    )


def model_dir_from_env(env: Mapping[str, str]) -> Path:
    """Where SageMaker put the model: ``SM_MODEL_DIR``, else ``<base>/model``."""
    return Path(
        env.get("SM_MODEL_DIR") or Path(env.get("SAGEMAKER_BASE_DIR", DEFAULT_BASE_DIR)) / "model"
    )


def fetch_code(env: Mapping[str, str]) -> dict[str, str]:
    """The environment with an ``s3://`` ``SAGEMAKER_SUBMIT_DIRECTORY`` made local.

    As SageMaker's toolkits do: the ``sourcedir.tar.gz`` it names is downloaded and extracted
    (safely) into ``<base>/code`` unless that already holds files, and the variable then names
    ``<base>/code``. Any other environment is returned unchanged.
    """
    out = dict(env)
    uri = env.get("SAGEMAKER_SUBMIT_DIRECTORY") or ""
    if not uri.startswith("s3://"):
        return out
    # Only a container whose code is on S3 imports the AWS side (and boto3).
    from mlcicd.aws.sourcedir import download_and_extract

    code_dir = Path(env.get("SAGEMAKER_BASE_DIR", DEFAULT_BASE_DIR)) / "code"
    if download_and_extract(uri, code_dir, region=env.get("SAGEMAKER_REGION") or None):
        print(f"serve: code {uri} extracted into {code_dir}", file=sys.stderr)
    out["SAGEMAKER_SUBMIT_DIRECTORY"] = str(code_dir)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "serve":
        args = args[1:]
    if args:
        print(
            f"usage: python -m mlcicd.serving.container [serve] (unexpected: {' '.join(args)})",
            file=sys.stderr,
        )
        return 2
    configure_logging("serve")
    try:  # first: no child (a download, a worker) may see the variables
        sock = activated_socket(os.environ)
    except ValueError as exc:
        print(f"serve: cannot serve the socket handed over: {exc}", file=sys.stderr)
        return 2
    try:
        env = fetch_code(os.environ)
    except MlcicdError as exc:
        print(f"serve: cannot fetch the inference code: {exc.headline}", file=sys.stderr)
        return 1
    state_dir = Path(os.environ.get("MLCICD_SERVE_DIR") or tempfile.mkdtemp(prefix="mlcicd-serve-"))
    state_dir.mkdir(parents=True, exist_ok=True)
    try:  # before any worker runs model_fn
        env["SM_MODEL_DIR"] = str(verified_model_dir(env, model_dir_from_env(env), state_dir))
    except MlcicdError as exc:
        print(f"serve: refusing to serve the model: {exc.headline}", file=sys.stderr)
        return 1
    try:
        config = config_from_env(env)
    except ValueError as exc:
        print(f"serve: invalid serving settings: {exc}", file=sys.stderr)
        return 2
    atomic_write_json(state_dir / CONFIG_FILE, config.to_dict())
    return Supervisor(state_dir, log_hint="the container's log (CloudWatch)", sock=sock).run()


if __name__ == "__main__":
    sys.exit(main())
