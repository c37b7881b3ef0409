"""A fleet's plan: which share of it this process takes, in which waves, under which run.

Shards: `--shard i/N` keeps the databases whose stable hash (sha256 of the name) is i
modulo N, so N processes given 0/N .. N-1/N take every database exactly once, whatever
the order of the file or the machine. Waves: the canary first, then the file's waves in
order, then the rest; a database goes into the first wave that selects it. The run id
names the fleet and the SQL tree as rendered for the env: the same command, run again,
is the same run and continues it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from shipshape.errors import ConfigError
from shipshape.ops.fleets.spec import Fleet, Member, Selector

_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def takes(self, name: str) -> bool:
        return shard_of(name, self.count) == self.index


def parse_shard(text: str | None) -> Shard | None:
    """`i/N` with 0 <= i < N; None for no sharding. ConfigError (exit 5) otherwise."""
    if text in (None, ""):
        return None
    match = _SHARD.match(str(text))
    if not match or not 0 <= int(match[1]) < int(match[2]):
        raise ConfigError(f"--shard {text!r}: expected i/N with 0 <= i < N, e.g. --shard 0/4 "
                          f"(the first of four shares).")
    return Shard(int(match[1]), int(match[2]))


def shard_of(name: str, count: int) -> int:
    """The share a database belongs to: stable across processes, machines and file order."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") % count


@dataclass(frozen=True)
class Wave:
    name: str
    members: tuple[Member, ...]
    canary: bool = False


def waves(fleet: Fleet, members: list[Member] | tuple[Member, ...]) -> list[Wave]:
    """The canary wave, the file's waves, the rest; empty waves are left out."""
    left = list(members)
    result = []
    for name, selector, canary in ([("canary", fleet.canary, True)]
                                   + [(w.name, w.selector, False) for w in fleet.waves]):
        taken = _select(selector, left)
        left = [m for m in left if m not in taken]
        if taken:
            result.append(Wave(name, tuple(taken), canary))
    if left:
        result.append(Wave("rest", tuple(left)))
    return result


def _select(selector: Selector, members: list[Member]) -> list[Member]:
    if selector.by_count:
        return members[: selector.count or 0]
    return [m for m in members if selector.matches(m)]


def select(fleet: Fleet, shard: Shard | None) -> list[Member]:
    """The databases this process takes, in file order."""
    return [m for m in fleet.members if shard is None or shard.takes(m.name)]


def run_id(fleet: Fleet, env_name: str, tree_checksum: str, phase: str) -> str:
    """The run: this fleet, deploying this tree (as rendered for env), this phase — e.g.
    `tenants/prod/3f2a9c1d0b7e/expand`. Recorded in each database's shipshape.deployments
    row; the contract run of a tree is another run than its expand run."""
    return f"{fleet.name}/{env_name}/{tree_checksum[:12]}/{phase}"
