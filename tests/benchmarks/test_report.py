"""benchmarks.report: the weights record counts CPU and GPU minutes apart."""

from __future__ import annotations


def test_the_weights_record_counts_cpu_and_gpu_minutes_apart(tmp_path):
    from aecodec.models.checkpoint import save_checkpoint
    from aecodec.models.hyperprior import HyperpriorConfig, MeanScaleHyperprior
    from benchmarks.report import weights_record

    model = MeanScaleHyperprior(HyperpriorConfig(N=16, M=24))
    model.update()
    chunks = [{"from_step": 0, "to_step": 10, "minutes": 30.0, "device": "cpu", "device_name": "cpu"},
              {"from_step": 10, "to_step": 90, "minutes": 6.5, "device": "cuda", "device_name": "NVIDIA H100",
               "crops_per_s": 2800.0}]
    save_checkpoint(tmp_path / "w.pt", model, model_id="tiny", training={"steps": 90, "chunks": chunks})
    r = {"machine": {"date": "2026-11-27T00:00:00"}, "dataset": {"images": [1, 2]},
         "codecs": {"aecodec": {"mean": [{"quality": 50, "bpp": 0.5, "psnr": 30.0}]}},
         "bd_rate": {"pchip": [{"test": "aecodec", "anchor": "jpeg-420", "psnr": -12.5}]}}
    rec = weights_record(r, tmp_path / "w.pt")
    t = rec["training"]
    assert (t["cpu_minutes"], t["gpu_minutes"], t["device_minutes"]) == (30.0, 6.5, 36.5)
    assert t["devices"] == ["NVIDIA H100", "cpu"] and t["chunks"][1]["crops_per_s"] == 2800.0
    assert rec["kodak"]["bd_rate_psnr"] == {"jpeg-420": -12.5}
