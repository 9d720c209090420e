"""The tiny backbone (corpora and the language-model family), materialized once per pytest session into one
Dagster instance and one warehouse; each study's group test then materializes only its own group against it.

The study's inputs from the backbone resolve through the instance: the warehouse IO manager reads the
materialization the instance recorded before the study's run was launched ("at launch"). `Backbone.materialize`
checks that every backbone table a study read is one the backbone run wrote, and that the study read every
backbone asset it depends on, so a study that silently fell back to some other file fails here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

BACKBONE_GROUPS = ("corpora", "lm")
SAFETY_DATA = ("safety_items", "safety_vocabulary")  # what the chat tokenizer reads from the safety room
CHAT_MODELS = ("chat_arithmetic_tasks", "chat_facts_tasks", "chat_instruction_tasks", "chat_tokenizer",
               "chat_base", "chat_sft", "chat_rl", *SAFETY_DATA)


def _table_ids(result: dg.ExecuteInProcessResult) -> dict[dg.AssetKey, str]:
    """asset key -> ``<group>.<asset>:<materialization id>`` of every table the run wrote."""
    ids = {}
    for event in result.get_asset_materialization_events():
        meta = event.materialization.metadata
        ids[event.asset_key] = f"{meta['table'].value}:{meta['materialization_id'].value}"
    return ids


def _lineage(result: dg.ExecuteInProcessResult) -> dict[dg.AssetKey, tuple[list[str], dict[str, str]]]:
    """asset key -> (upstream ids, how each was resolved) stamped on the table the run wrote."""
    from resources.tables import read_table

    found = {}
    for event in result.get_asset_materialization_events():
        frame = read_table(event.materialization.metadata["path"].value, with_lineage=True)
        row = frame if isinstance(frame, dict) else frame.iloc[0]
        found[event.asset_key] = (json.loads(row["upstream"]), json.loads(row["upstream_resolution"]))
    return found


@dataclass
class Backbone:
    """One Dagster instance and one warehouse holding the materialized tiny backbone."""

    instance: dg.DagsterInstance
    root: Path
    resources: dict[str, Any]
    result: dg.ExecuteInProcessResult
    table_ids: dict[dg.AssetKey, str] = field(default_factory=dict)
    _chat: dg.ExecuteInProcessResult | None = None

    def value(self, key: str | dg.AssetKey) -> Any:
        """A backbone asset's value as the backbone run produced it (what every study run reads)."""
        return self.result.asset_value(key)

    def materialize(self, group: str, *, also: tuple[str, ...] = ()) -> dg.ExecuteInProcessResult:
        """Materialize one study group (and its checks, and the assets named in `also`, e.g. another room's data
        the group needs) against the backbone; check it read the backbone."""
        from pipelines.definitions import defs

        selection = dg.AssetSelection.groups(group) | dg.AssetSelection.assets(*also)
        result = dg.materialize(list(defs.assets) + list(defs.asset_checks), selection=selection,
                                instance=self.instance, resources=self.resources)
        assert result.success
        assert_data_checks_pass(result)
        made = {e.asset_key for e in result.get_asset_materialization_events()}
        assert made and made <= selection.resolve(defs.resolve_asset_graph())
        self.check_reads(result)
        return result

    def chat_models(self) -> dg.ExecuteInProcessResult:
        """The chat models (base, SFT, RL; not the budget table) and the safety data their tokenizer reads,
        materialized once per session on first use: the studies built on chat models (safety, alignment,
        robustness) read these from the instance."""
        if self._chat is None:
            from pipelines.definitions import defs

            selection = dg.AssetSelection.assets(*CHAT_MODELS)
            self._chat = dg.materialize(list(defs.assets) + list(defs.asset_checks), selection=selection,
                                        instance=self.instance, resources=self.resources)
            assert self._chat.success
            assert_data_checks_pass(self._chat)
            self.check_reads(self._chat)
        return self._chat

    def check_reads(self, result: dg.ExecuteInProcessResult) -> None:
        """Each of the group's tables names, in its lineage, the backbone run's materialization of every backbone
        asset it takes as input, chosen "at launch"; no other backbone table shows up there."""
        from pipelines.definitions import defs

        graph = defs.resolve_asset_graph()
        backbone_ids = set(self.table_ids.values())
        for key, (upstream, resolution) in _lineage(result).items():
            read = {u for u in upstream if u.split(".", 1)[0] in BACKBONE_GROUPS}
            assert read <= backbone_ids, (key, sorted(read - backbone_ids))
            assert all(resolution[u] == "at launch" for u in read), (key, resolution)
            needed = {self.table_ids[p] for p in graph.get(key).parent_keys if p in self.table_ids}
            assert needed <= read, (key, sorted(needed - read))

def assert_data_checks_pass(result: dg.ExecuteInProcessResult) -> None:
    """No ERROR-severity asset check of the run failed: our checks do not block, so ``result.success`` alone
    would let a table that broke its rules pass (findings checks only warn, and may)."""
    from pipelines.run_progress import failed_checks

    failed = failed_checks(result.get_asset_check_evaluations())["ERROR"]
    assert not failed, f"data checks failed: {failed}"


def materialize_backbone(root: Path, instance: dg.DagsterInstance) -> Backbone:
    """Materialize the corpora and lm groups (not the assets that need a user's files) into ``root``."""
    from pipelines.definitions import defs
    from pipelines.jobs import USER_INPUTS
    from resources import default_resources

    resources = default_resources(str(root))
    result = dg.materialize(list(defs.assets) + list(defs.asset_checks),
                            selection=dg.AssetSelection.groups(*BACKBONE_GROUPS) - USER_INPUTS,
                            instance=instance, resources=resources)
    assert result.success
    assert_data_checks_pass(result)
    return Backbone(instance=instance, root=root, resources=resources, result=result, table_ids=_table_ids(result))
