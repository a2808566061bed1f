"""Start or join Ray, put the engine application on Serve, and take it all down again.

Started locally, Ray gets a short temp dir (its Unix socket paths must fit in 107 bytes) and a
capped object store (jobs move audio over HTTP, not through Ray's objects). Joined with an address,
the cluster is someone else's: only Segue's application is removed on exit, never Serve or Ray.
"""

import logging
import os
import tempfile
import warnings

APP_NAME = "segue"
LOCAL_OBJECT_STORE_BYTES = 256 << 20


def short_temp_dir() -> str:
    base = "/tmp" if os.name == "posix" else tempfile.gettempdir()
    return os.path.join(base, f"segue-ray-{os.getuid() if hasattr(os, 'getuid') else 'user'}")


def start_ray(address: str | None = None) -> bool:
    """Join the cluster at `address`, or start a local Ray instance; True when started here."""
    import ray

    # Serve's configuration models use Pydantic features Pydantic 2 deprecates: noise for a producer.
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"ray\.serve\..*")
    options = {"include_dashboard": False, "logging_level": logging.WARNING, "log_to_driver": False}
    if address:
        ray.init(address=address, **options)
        return False
    ray.init(object_store_memory=LOCAL_OBJECT_STORE_BYTES, _temp_dir=short_temp_dir(), **options)
    return True


def serve_engine(
    model_id: str,
    host: str,
    port: int,
    token: str | None,
    min_replicas: int = 1,
    max_replicas: int = 1,
    max_request_bytes: int | None = None,
    gpus_per_replica: float | None = None,
) -> str:
    """Deploy the engine for `model_id` on Serve's proxy at host:port; returns the engine's URL.

    Blocks until every replica has loaded the model (a warm-up job), so the URL works at once.
    """
    import ray
    from ray import serve

    from bridge.engine.remote.server import DEFAULT_MAX_REQUEST_BYTES, build_app

    if gpus_per_replica is None:
        gpus_per_replica = 1.0 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0
    serve.start(http_options={"host": host, "port": port})
    application = build_app(
        model_id,
        token,
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        gpus_per_replica=gpus_per_replica,
        max_request_bytes=max_request_bytes or DEFAULT_MAX_REQUEST_BYTES,
    )
    serve.run(application, name=APP_NAME, route_prefix="/", blocking=False)
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    return f"http://{shown_host}:{port}"


def stop(started_here: bool) -> None:
    """Remove Segue's application; shut Serve and Ray down only if this process started them."""
    import ray
    from ray import serve

    if not ray.is_initialized():
        return
    try:
        if started_here:
            serve.shutdown()
        else:
            serve.delete(APP_NAME)
    finally:
        ray.shutdown()
