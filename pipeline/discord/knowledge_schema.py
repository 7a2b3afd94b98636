"""Arrow schema of the elizaos/knowledge summary pairs (the shared ChatML message type)."""

from __future__ import annotations

import pyarrow as pa

from pipeline.datasets.chatml import MESSAGE_TYPE

KNOWLEDGE_SCHEMA = pa.schema(
    [
        pa.field("messages", pa.list_(MESSAGE_TYPE)),
        pa.field("example_id", pa.string()),
        pa.field("source", pa.string()),
        pa.field("quality", pa.string()),
        pa.field("kind", pa.string()),
        pa.field("persona", pa.string()),
        pa.field("channel", pa.string()),
        pa.field("date", pa.string()),
    ]
)

KNOWLEDGE_FIELDS = {
    "messages": "system (persona, flagged as from a summary), user (the question or the help request), "
    "assistant (the summarised answer or resolution)",
    "example_id": "`{date}:{channel}:{index}`",
    "source": "always `elizaos-knowledge-summary`",
    "quality": "always `low`",
    "kind": "`qa` (FAQ: asked by / answered by) or `help` (helper / helpee)",
    "persona": "the answerer or helper, as the summary names them",
    "channel": "channel name",
    "date": "the summary's day (UTC)",
}
