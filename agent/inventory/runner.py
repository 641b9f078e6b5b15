"""Run inventory passes: at start, on image events (debounced), and every few minutes; report as protobuf."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import docker.errors
import requests.exceptions

from agent.errors import DockerUnavailable
from agent.inventory.events import ImageEvents
from agent.inventory.scan import Inventory
from enoexec.v1 import enoexec_pb2 as pb

logger = logging.getLogger(__name__)

EVERY = 300.0  # a pass at least this often, should the event stream miss something
SETTLE = 0.5  # a `docker load` of many images is one pass, not one per image


def report_pb(inventory: Inventory) -> pb.ImageInventory | None:
    """The inventory as the wire carries it; None until the first pass ended."""
    found = inventory.unrunnable
    if found is None:
        return None
    return pb.ImageInventory(
        images_judged=inventory.images_judged,
        unrunnable=[pb.UnrunnableImage(image=u.image, image_id=u.image_id, image_platform=u.image_platform,
                                       binary_platform=u.binary_platform, cause=u.cause, explanation=u.explanation,
                                       hint=u.hint, fix=u.fix, path=u.path) for u in found],
    )


async def run(inventory: Inventory, api: Any, stop: threading.Event, *, every: float = EVERY) -> None:
    """Pass after pass until cancelled; Docker failures are retried at the next trigger."""
    changed = asyncio.Event()
    loop = asyncio.get_running_loop()
    def wake() -> None:
        loop.call_soon_threadsafe(changed.set)

    events = ImageEvents(api, wake, stop=stop)
    thread = threading.Thread(target=events.run, name="docker-image-events", daemon=True)
    thread.start()
    try:
        while True:
            try:
                await asyncio.to_thread(inventory.scan)
            except (docker.errors.DockerException, requests.exceptions.RequestException, DockerUnavailable) as e:
                logger.debug("inventory pass deferred error=%s", str(e).splitlines()[0][:200])
            try:
                await asyncio.wait_for(changed.wait(), timeout=every)
                await asyncio.sleep(SETTLE)
            except TimeoutError:
                pass
            changed.clear()
    finally:
        events.close()
