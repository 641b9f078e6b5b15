"""The collector's view of the agents' image inventories: replaced per report, gone with the stream, capped labels."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from collector.ingest.inventory import InventoryBoard, UnrunnableImagesCollector, images_json
from enoexec.v1 import enoexec_pb2 as pb


def beat(*images: str, cause: str = "arch_mismatch") -> pb.Heartbeat:
    return pb.Heartbeat(inventory=pb.ImageInventory(images_judged=10, unrunnable=[
        pb.UnrunnableImage(image=i, image_id="sha256:" + i, cause=cause, binary_platform="linux/arm64", fix="Publish") for i in images]))


def test_reports_replace_each_other_and_leave_with_their_stream() -> None:
    board, s1, s2 = InventoryBoard(), object(), object()
    board.report("a", "linux/amd64", s1, beat("demo:1", "old:1"))
    board.report("b", "linux/amd64", s2, beat("demo:1"))
    board.report("a", "linux/amd64", s1, beat("demo:1"))  # old:1 was removed from host a
    (group,) = images_json(board.snapshot())
    assert group["image"] == "demo:1" and group["hosts"] == ["a", "b"] and group["binary_platform"] == "linux/arm64"
    board.report("a", "linux/amd64", s1, pb.Heartbeat())  # no inventory field: an older agent; nothing changes
    assert len(board.snapshot()) == 2
    board.forget("b", s1)  # not b's stream
    board.forget("b", s2)
    assert [f.host_id for f in board.snapshot()] == ["a"]


def test_unknown_causes_are_folded_and_image_labels_capped() -> None:
    board = InventoryBoard()
    board.report("a", "linux/amd64", object(), beat("one:1", "two:1", "three:1", cause="made_up"))
    registry = CollectorRegistry()
    registry.register(UnrunnableImagesCollector(board, max_image_labels=2))
    labels = {"host_platform": "linux/amd64", "cause": "unknown"}
    assert registry.get_sample_value("enoexec_unrunnable_images", {**labels, "image": "one:1"}) == 1.0
    assert registry.get_sample_value("enoexec_unrunnable_images", {**labels, "image": "two:1"}) == 1.0
    assert registry.get_sample_value("enoexec_unrunnable_images", {**labels, "image": "_other"}) == 1.0
