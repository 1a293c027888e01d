"""Dataset sources, one module each, registered by `dataset.source`:

| source       | module            | what it reads                                                                |
|--------------|-------------------|------------------------------------------------------------------------------|
| digits       | `digits.py`       | scikit-learn's bundled 8×8 digits                                             |
| shapes       | `shapes.py`       | the dSprites grid, generated: 3 shapes × 6 scales × 40 orientations × 32 × 32  |
| image_folder | `image_folder.py` | image files under a folder (class = first sub-folder), decoded with Pillow     |
| npz          | `npz.py`          | NumPy .npz files with named arrays (never unpickled)                          |
| idx          | `idx.py`          | MNIST IDX images + labels, plain or .gz                                       |
| tabular      | `tabular.py`      | CSV or Parquet files: numeric feature columns and an optional label column    |
| text         | `text.py`         | documents as bag-of-words counts over a train-split vocabulary                |
| molecules    | `molecules.py`    | SMILES (CSV/Parquet column or .smi), canonicalised with RDKit: fingerprints or SELFIES |

`base.py` holds what they share: `Source`, `Plan`, `Rows`, the registry and the plan file. A new source is a module
with a `Source` subclass under `@register_source`, imported here so that it registers.
"""

from latent.data.sources import digits, idx, image_folder, molecules, npz, shapes, tabular, text
from latent.data.sources.base import Plan, Rows, Source, get_source, plan_to_json, register_source, source_from_plan
from latent.data.sources.shapes import render_shapes

__all__ = [
    "Plan",
    "Rows",
    "Source",
    "digits",
    "get_source",
    "idx",
    "image_folder",
    "molecules",
    "npz",
    "plan_to_json",
    "register_source",
    "render_shapes",
    "shapes",
    "source_from_plan",
    "tabular",
    "text",
]
