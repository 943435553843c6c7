"""``@task.wavespeed``: the TaskFlow form of :class:`WaveSpeedRunModelOperator`.

The decorated function returns the model's inputs; everything else (checks, uploads, submit, waiting or
deferring, storing, XComs, resuming a retry) is the operator's, unchanged. The function is called once
per submit, in :meth:`build_inputs`: a task resumed after deferral, or a retry resuming an earlier try's
prediction, does not call it again. Registered as the provider's task decorator in ``get_provider_info()``,
so ``from airflow.sdk import task`` gives ``@task.wavespeed(model=...)``, as the common AI provider gives
``@task.llm`` beside ``LLMOperator``.

Imports: only what building the task needs (``tests/test_decorators.py`` holds the line).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.common.compat.sdk import (
    DecoratedOperator,
    context_merge,
    determine_kwargs,
    task_decorator_factory,
)

from airflow_wavespeed.exceptions import WaveSpeedInputError
from airflow_wavespeed.operators.run_model import WaveSpeedRunModelOperator
from airflow_wavespeed.utils.validation import check_json, without_bytes

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import TaskDecorator
    from airflow.sdk import Context


class _WaveSpeedDecoratedOperator(DecoratedOperator, WaveSpeedRunModelOperator):
    """
    Run a WaveSpeed model on the inputs the decorated function returns.

    :param python_callable: the decorated function; it returns the model's inputs as a dict (media as local
        paths, ``s3://`` URIs, bytes or URLs, as the operator's ``inputs``).
    :param op_args: positional arguments for the function (templated).
    :param op_kwargs: keyword arguments for the function (templated).
    :param kwargs: the arguments of :class:`WaveSpeedRunModelOperator` (``model``, ``output_uri``, …) but
        ``inputs``, which is what the function returns.
    """

    template_fields: Sequence[str] = (*DecoratedOperator.template_fields, *WaveSpeedRunModelOperator.template_fields)
    template_fields_renderers: ClassVar[dict[str, str]] = {
        **DecoratedOperator.template_fields_renderers,
        **WaveSpeedRunModelOperator.template_fields_renderers,
    }
    custom_operator_name: str = "@task.wavespeed"

    def __init__(
        self,
        *,
        python_callable: Callable[..., Any],
        op_args: Collection[Any] | None = None,
        op_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if "inputs" in kwargs:
            raise WaveSpeedInputError(
                "@task.wavespeed takes no inputs=: the decorated function returns the model's inputs"
            )
        super().__init__(python_callable=python_callable, op_args=op_args, op_kwargs=op_kwargs, **kwargs)

    def build_inputs(self, context: Context) -> dict[str, Any]:
        """Call the function (once per submit) and check it returned a JSON-able dict of inputs."""
        context_merge(context, self.op_kwargs)
        kwargs = determine_kwargs(self.python_callable, self.op_args, context)
        inputs = self.python_callable(*self.op_args, **kwargs)
        name = getattr(self.python_callable, "__name__", "the function")
        if not isinstance(inputs, dict):
            raise WaveSpeedInputError(
                f"@task.wavespeed: {name}() must return the inputs of {self.model} as a dict of input name to "
                f"value, got {type(inputs).__name__}; nothing was submitted"
            )
        check_json(without_bytes(inputs), argument=f"the inputs {name}() returned")
        return dict(inputs)


def wavespeed_task(python_callable: Callable[..., Any] | None = None, **kwargs: Any) -> TaskDecorator:
    """
    ``@task.wavespeed(model=..., ...)``: wrap a function returning a model's inputs into a WaveSpeed run.

    :param python_callable: the function to wrap (when used without parentheses).
    :param kwargs: the arguments of :class:`WaveSpeedRunModelOperator` and of any task (``task_id``,
        ``retries``, …).
    """
    # The function returns a dict (the inputs) but the task returns the outputs' list: never unrolled.
    if kwargs.pop("multiple_outputs", False):
        raise WaveSpeedInputError("@task.wavespeed returns the list of outputs: multiple_outputs=True does not apply")
    return task_decorator_factory(
        python_callable=python_callable,
        multiple_outputs=False,
        decorated_operator_class=_WaveSpeedDecoratedOperator,
        **kwargs,
    )
