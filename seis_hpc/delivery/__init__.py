"""What a client receives: the run record (:mod:`.runlog`), the processing report (:mod:`.report`)
and the manifest (:mod:`.manifest`).
"""
