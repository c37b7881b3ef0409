"""Image providers: `placeholder` draws locally, `huggingface` calls the inference API.

Both take (prompt, seed, model) and return where the image is. The placeholder's image is
a pure function of (seed, size), served by the app at its URL; Hugging Face's bytes are
kept as a data: URL in avatars."baseImageUrl" (this project has no object store).
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass

from app import png

IMAGE_ROUTE = "/api/apps/avatar-creator/images/placeholder"


class ProviderError(Exception):
    """The provider could not produce an image; the message is safe to store and show."""


@dataclass(frozen=True)
class GeneratedImage:
    url: str
    thumbnail_url: str | None
    width: int
    height: int


def placeholder_url(seed: int, width: int, height: int) -> str:
    return f"{IMAGE_ROUTE}/{seed}-{width}x{height}.png"


class PlaceholderProvider:
    name = "placeholder"

    async def generate(self, prompt: str, seed: int, model: dict) -> GeneratedImage:
        caps = model.get("capabilities") or {}
        width = min(int(caps.get("width", 512)), png.MAX_SIDE)
        height = min(int(caps.get("height", 512)), png.MAX_SIDE)
        # Draw it now (it lands in the render cache): a generation completes only when its
        # image really exists, and the first GET of the URL is served from memory.
        await asyncio.to_thread(png.render, seed, width, height)
        await asyncio.to_thread(png.render, seed, 128, 128)
        return GeneratedImage(
            placeholder_url(seed, width, height), placeholder_url(seed, 128, 128), width, height
        )

    async def aclose(self) -> None:
        pass


class HuggingFaceProvider:
    name = "huggingface"

    def __init__(self, api_key: str, base_url: str, timeout: float = 120.0):
        import httpx

        self._key = api_key
        self._base_url = base_url.rstrip("/")
        self._client = httpx.AsyncClient(timeout=timeout)

    async def generate(self, prompt: str, seed: int, model: dict) -> GeneratedImage:
        import httpx

        caps = model.get("capabilities") or {}
        repository = caps.get("modelId")
        if not repository:
            raise ProviderError(f"model {model.get('modelKey')} has no capabilities.modelId")
        width, height = int(caps.get("width", 512)), int(caps.get("height", 512))
        parameters = {"width": width, "height": height, "seed": seed}
        if "numInferenceSteps" in caps:
            parameters["num_inference_steps"] = caps["numInferenceSteps"]
        if "guidanceScale" in caps:
            parameters["guidance_scale"] = caps["guidanceScale"]
        try:
            response = await self._client.post(
                f"{self._base_url}/{repository}",
                json={"inputs": prompt, "parameters": parameters},
                headers={
                    "Authorization": f"Bearer {self._key}",
                    "Accept": "image/png",
                    "x-wait-for-model": "true",
                },
            )
        except httpx.HTTPError as exc:
            raise ProviderError(f"Hugging Face did not answer: {type(exc).__name__}") from None
        content_type = response.headers.get("content-type", "").split(";")[0].strip()
        if response.status_code != 200 or not content_type.startswith("image/"):
            detail = response.text[:200].replace(self._key, "***") if response.content else ""
            raise ProviderError(
                f"Hugging Face answered {response.status_code} for {repository}"
                + (f": {detail}" if detail else "")
            )
        data = base64.b64encode(response.content).decode()
        return GeneratedImage(f"data:{content_type};base64,{data}", None, width, height)

    async def aclose(self) -> None:
        await self._client.aclose()


def build(settings):
    if settings.generation_provider == "huggingface":
        return HuggingFaceProvider(settings.huggingface_api_key, settings.huggingface_api_url)
    return PlaceholderProvider()
