"""tradewire.v1 keeps the seed's wire contract: every field number, type and label, and
every enum value of the seed's `messages.proto` (tests/fixtures/seed_messages.proto, a copy
of the block in ../shared/seed) is unchanged, so services
built on the seed decode tradewire payloads (and the reverse)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from grpc_tools import protoc  # type: ignore[import-untyped]  # ships no stubs or py.typed

from tradewire._gen import registry

SEED_DOC = Path(__file__).resolve().parents[2] / "shared" / "seed"
SEED_DOC /= "python-rust-integration-architecture.md"
# The seed's messages.proto, kept in the repository so the check runs on every clone.
SEED_PROTO = Path(__file__).parent / "fixtures" / "seed_messages.proto"


def _seed_block(text: str) -> str:
    block = re.search(r"\*\*messages\.proto\*\*:\s*```protobuf\n(.*?)```", text, re.S)
    assert block, "the seed's messages.proto block was not found"
    return block.group(1)


def _seed_pool(tmp_path: Path) -> descriptor_pool.DescriptorPool:
    out = tmp_path / "seed.binpb"
    args = ["protoc", f"-I{SEED_PROTO.parent}", f"-o{out}", SEED_PROTO.name]
    assert protoc.main(args) == 0
    pool = descriptor_pool.DescriptorPool()
    for proto in descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file:
        pool.Add(proto)
    return pool


def test_fixture_is_the_seed_contract() -> None:
    if not SEED_DOC.exists():
        pytest.skip(f"the seed document is not beside the checkout ({SEED_DOC})")
    fixture = SEED_PROTO.read_text().split("\n", 2)[2]  # after the two comment lines
    assert fixture == _seed_block(SEED_DOC.read_text())


SEED_MESSAGES = ["MarketData", "TradingSignal", "Order", "Position", "StrategyCommand"]


@pytest.mark.parametrize("name", SEED_MESSAGES)
def test_seed_fields_and_enums_are_unchanged(tmp_path: Path, name: str) -> None:
    seed = _seed_pool(tmp_path).FindMessageTypeByName(f"trading.{name}")
    ours = next(t.cls.DESCRIPTOR for t in registry.MESSAGE_TYPES if t.cls.DESCRIPTOR.name == name)
    for field in seed.fields:
        mine = ours.fields_by_number.get(field.number)
        assert mine is not None, f"{name}.{field.name} ({field.number}) is missing"
        assert (mine.name, mine.type, mine.is_repeated) == (
            field.name,
            field.type,
            field.is_repeated,
        ), f"{name}.{field.name} changed"
    for enum in seed.enum_types:
        mine_enum = ours.enum_types_by_name[enum.name]
        assert {v.name: v.number for v in enum.values} == {
            v.name: v.number for v in mine_enum.values if v.name in enum.values_by_name
        }
        assert set(enum.values_by_name) <= set(mine_enum.values_by_name)


def test_seed_payloads_decode_as_tradewire_and_back(tmp_path: Path) -> None:
    pool = _seed_pool(tmp_path)
    seed_order = message_factory.GetMessageClass(pool.FindMessageTypeByName("trading.Order"))
    # GetMessageClass is typed as returning bare Message (no field keywords): fill it by name.
    original = json_format.ParseDict(
        {
            "order_id": "o-1",
            "symbol": "AAPL",
            "side": 1,
            "quantity": 5,
            "price": 9.5,
            "type": 1,
            "status": 5,
            "timestamp_us": -3,
            "rejection_reason": "risk",
        },
        seed_order(),
    )
    ours = next(t.cls for t in registry.MESSAGE_TYPES if t.cls.DESCRIPTOR.name == "Order")
    decoded = ours.FromString(original.SerializeToString())
    assert decoded.rejection_reason == "risk" and decoded.side == ours.SELL
    assert seed_order.FromString(decoded.SerializeToString()) == original
