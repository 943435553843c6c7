"""WaveSpeedImageEditOperator: OpenAI GPT Image 2 Edit (``openai/gpt-image-2/edit``) on WaveSpeed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_wavespeed.exceptions import WaveSpeedInputError
from airflow_wavespeed.operators.run_model import WaveSpeedRunModelOperator
from airflow_wavespeed.utils.validation import (
    ASPECT_RATIOS,
    check_choice,
    check_dict,
    check_images,
    check_json,
    check_prompt,
    is_templated,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_wavespeed.catalog.entry import ModelEntry
    from airflow_wavespeed.media.inputs import MediaInput

GPT_IMAGE_2_EDIT = "openai/gpt-image-2/edit"
#: A mapped edit's label in the UI, its prompt instead of 0, 1, 2: ``partial(map_index_template=PROMPT_LABEL)``.
#: Not the default: rendering a label costs each launch one more call to Airflow's API.
PROMPT_LABEL = "{{ task.prompt | truncate(60) }}"
#: Inputs this operator owns; ``extra_inputs`` may not set them behind its back.
_NAMED_INPUTS = ("images", "prompt", "aspect_ratio", "enable_sync_mode", "enable_base64_output")


class WaveSpeedImageEditOperator(WaveSpeedRunModelOperator):
    """
    Edit images from a prompt with GPT Image 2 Edit; see :class:`WaveSpeedRunModelOperator` for the
    waiting, storage and XCom arguments.

    :param images: 1 to 16 reference images: http(s) URLs, ``s3://bucket/key`` URIs or local paths
        (uploaded first). A single string is one image. Templated.
    :param prompt: the edit to make, at most 32,000 characters. Templated.
    :param aspect_ratio: ``1:1`` (default), ``2:3``, ``3:2`` or a newer ratio the model page lists; None
        lets the API choose from the input. Templated.
    :param extra_inputs: more model inputs passed through unvalidated (e.g. ``resolution``,
        ``quality``), for inputs the API adds later. Templated.
    """

    template_fields: Sequence[str] = ("images", "prompt", "aspect_ratio", "extra_inputs", "output_uri")
    template_fields_renderers = {"extra_inputs": "json", "prompt": "md"}

    def __init__(
        self,
        *,
        images: str | list[str],
        prompt: str,
        aspect_ratio: str | None = "1:1",
        extra_inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(model=GPT_IMAGE_2_EDIT, **kwargs)
        self.images = images
        self.prompt = prompt
        self.aspect_ratio = aspect_ratio
        self.extra_inputs = extra_inputs if extra_inputs is not None else {}
        self._check_edit_arguments(rendered=False)

    def validate_arguments(self) -> None:
        super().validate_arguments()
        self._check_edit_arguments(rendered=True)

    def build_inputs(self, context: Context) -> dict[str, Any]:
        inputs = {**self.extra_inputs, "images": check_images(self.images), "prompt": self.prompt}
        if self.aspect_ratio is not None:
            inputs["aspect_ratio"] = self.aspect_ratio
        return inputs

    def find_media(self, inputs: dict[str, Any], entry: ModelEntry | None) -> list[MediaInput]:
        """The ``images`` (``images[n]`` in messages, images only), whatever the catalog adds."""
        from airflow_wavespeed.media.inputs import find_media

        images = {"images": inputs["images"]}
        return find_media(images, ["images"], label=lambda where: f"images[{where[1]}]", allowed=lambda _: ("image",))

    def lineage_inputs(self) -> list[str]:
        """The images as the user gave them: URLs, ``s3://`` objects, local files."""
        return check_images(self.images)

    def metadata_extras(self) -> dict[str, Any]:
        """Also the prompt (its first 1,000 characters), which a reviewer reads beside the images."""
        prompt = str(self.prompt)
        return {**super().metadata_extras(), "prompt": prompt if len(prompt) <= 1000 else prompt[:1000] + "…"}

    def _check_edit_arguments(self, *, rendered: bool) -> None:
        if rendered or not is_templated(self.images):
            check_images(self.images)
        if rendered or not is_templated(self.prompt):
            check_prompt(self.prompt)
        if rendered or not is_templated(self.aspect_ratio):
            check_choice(self.aspect_ratio, ASPECT_RATIOS, argument="aspect_ratio", allow_none=True)
        if rendered or not is_templated(self.extra_inputs):
            check_json(self.extra_inputs, argument="extra_inputs")
            clashes = sorted(set(check_dict(self.extra_inputs, argument="extra_inputs")) & set(_NAMED_INPUTS))
            if clashes:
                raise WaveSpeedInputError(
                    f"extra_inputs may not set {', '.join(clashes)}: use the operator's own argument(s)"
                )
