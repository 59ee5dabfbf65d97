"""The pipeline's lightweight Python components, each one call into `llmops.kfp.steps` on the run folder.

KFP ships only a component function's source into its container, so every import is inside the function; the image
(`kfp.image`, built by `make image`) has llmops and kfp installed. Under `kfp.local` the same functions run in
subprocesses of the current interpreter.
"""

from dataclasses import dataclass
from typing import Any

from kfp.dsl import Artifact, Markdown, Metrics, Model, Output

from kfp import dsl


def validate(config: str, workdir: str) -> str:
    from llmops.kfp import steps

    return steps.validate(config, workdir)


def baseline_eval(run_dir: str, metrics: Output[Metrics]):
    from llmops.kfp import steps

    for key, value in steps.baseline(run_dir).items():
        metrics.log_metric(key, value)


def train(run_dir: str, volume: str, model: Output[Model]) -> float:
    from llmops.kfp import steps

    result = steps.train(run_dir, model.path, volume)
    model.metadata.update({k: v for k, v in result.items() if isinstance(v, (int, float, str))})
    return float(result["final_loss"])


def evaluate(run_dir: str, metrics: Output[Metrics], report: Output[Markdown]):
    from llmops.kfp import steps

    result = steps.evaluate(run_dir)
    for key, value in result["metrics"].items():
        metrics.log_metric(key, value)
    with open(report.path, "w") as out:
        out.write(result["report"])


def gate(run_dir: str) -> bool:
    from llmops.kfp import steps

    return steps.gate(run_dir)


def register(run_dir: str) -> str:
    import json

    from llmops.kfp import steps

    return json.dumps(steps.register(run_dir))


def deploy(config: str, registration: str, manifest: Output[Artifact]) -> str:
    from llmops.kfp import steps

    return steps.deploy(config, registration, manifest.path)["service"]


@dataclass
class Components:
    """The seven components built on one image."""

    validate: Any
    baseline: Any
    train: Any
    evaluate: Any
    gate: Any
    register: Any
    deploy: Any


def make_components(image: str) -> Components:
    """Components running on `image` (which must contain llmops and kfp: no pip install at start)."""

    def make(func: Any) -> Any:
        return dsl.component(func, base_image=image, install_kfp_package=False)

    return Components(
        validate=make(validate),
        baseline=make(baseline_eval),
        train=make(train),
        evaluate=make(evaluate),
        gate=make(gate),
        register=make(register),
        deploy=make(deploy),
    )
