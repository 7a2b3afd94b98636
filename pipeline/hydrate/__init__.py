"""Dataset hydration: linked articles (main text, cached once per URL) and tweet images, fetched safely.

`guard` (SSRF policy and the pinned-address transport), `fetch` (bounded, polite, capped fetching),
`extract` (trafilatura), `cache` (article texts and `HydratedReferences` for the dataset builder),
`articles` and `images` (the two runs), `records` (resumable record logs), `stats`.
"""

from pipeline.hydrate.cache import HydratedReferences
from pipeline.hydrate.images import image_files
from pipeline.hydrate.stats import HydrationStats, hydration_stats

__all__ = ["HydratedReferences", "HydrationStats", "hydration_stats", "image_files"]
