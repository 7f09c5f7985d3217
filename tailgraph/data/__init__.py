"""Data sets: one reader module per format, all producing tailgraph's structures.

Each reader (``load_vg``, ``load_ag``, ``load_vidvrd``, ``load_oi``) validates its files once,
at the border, and raises :class:`tailgraph.errors.DataError` naming file, sample and field;
each reader module also has ``stats(root)``. The table of data kinds that names them is
:data:`tailgraph.protocols.DATA_KINDS` (``tailgraph.protocols.load_dataset`` reads a split by
kind name).
"""
