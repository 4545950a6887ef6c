"""The main job's report: the keys of ``report.json`` and the summary it
prints."""
import os.path as osp

#: keys of the JSON report and their types (the tests check them)
REPORT_TYPES = {
    'command': str,
    'config': str,
    'data_root': str,
    'work_dir': str,
    'epochs': int,
    'num_train_images': int,
    'num_val_images': int,
    'top1_train_form': float,
    'top1_deploy_form': float,
    'num_differing_predictions': int,
    'max_score_abs_diff': float,
    'max_score_rel_diff': float,
    'num_blocks_fused': int,
    'params_train_form': int,
    'params_deploy_form': int,
    'timing_batch_size': int,
    'timing_rounds': int,
    'torch_threads': int,
    'cpu_load_1min': float,
    'host': dict,
    'images_per_s_train_form': float,
    'images_per_s_deploy_form': float,
    'deploy_speedup': float,
    'top1_onnxruntime': float,
    'onnxruntime_differing_predictions': int,
    'images_per_s_onnxruntime': float,
    'int8_backend': str,
    'int8_calibration_images': int,
    'top1_int8': float,
    'top1_int8_reference_fp32': float,
    'int8_agreement': float,
    'images_per_s_int8': float,
    'int8_speedup_vs_train_form': float,
    'max_drop': float,
    'chosen_serving': str,
    'chosen_drop': float,
    'chosen_speedup_vs_train_form': float,
    'deploy_dir': str,
    'deploy_table': str,
    'seconds': dict,
    'checkpoint': str,
    'deploy_checkpoint': str,
    'deploy_config': str,
}


def format_report(report: dict) -> str:
    """The short human-readable summary printed at the end of the demo."""
    threads = report['torch_threads']
    lines = [
        '=' * 64,
        f'RepVGG demo report ({report["config"]})',
        f'  data                {report["num_train_images"]} train / '
        f'{report["num_val_images"]} held-out images ({report["data_root"]})',
        f'  training            {report["epochs"]} epochs in '
        f'{report["seconds"]["train"]:.1f} s on CPU',
        f'  top-1 train form    {report["top1_train_form"]:.2f} %',
        f'  top-1 deploy form   {report["top1_deploy_form"]:.2f} %',
        f'  differing preds     {report["num_differing_predictions"]} '
        f'(max class-score rel diff {report["max_score_rel_diff"]:.2e})',
        f'  top-1 ONNX Runtime  {report["top1_onnxruntime"]:.2f} % '
        f'({report["onnxruntime_differing_predictions"]} predictions differ '
        f'from PyTorch)',
        f'  top-1 INT8          {report["top1_int8"]:.2f} % '
        f'({report["int8_backend"]}, {report["int8_calibration_images"]} '
        f'calibration images; fp32 graph '
        f'{report["top1_int8_reference_fp32"]:.2f} %'
        f', {100 * report["int8_agreement"]:.2f} % identical predictions)',
        f'  parameters          {report["params_train_form"]:,} -> '
        f'{report["params_deploy_form"]:,} ({report["num_blocks_fused"]} '
        f'blocks fused)',
        f'  images/s (batch {report["timing_batch_size"]}) '
        f'train form {report["images_per_s_train_form"]:.0f}, deploy form '
        f'{report["images_per_s_deploy_form"]:.0f} '
        f'(x{report["deploy_speedup"]:.2f}), ONNX Runtime '
        f'{report["images_per_s_onnxruntime"]:.0f}, INT8 '
        f'{report["images_per_s_int8"]:.0f} '
        f'(x{report["int8_speedup_vs_train_form"]:.2f}; {threads} '
        f'thread{"s" * (threads > 1)}, CPU load '
        f'{report["cpu_load_1min"]:.1f})',
        f'  chosen serving      {report["chosen_serving"] or "none"} '
        f'(x{report["chosen_speedup_vs_train_form"]:.2f} the training form'
        f', drop {report["chosen_drop"]:.2f} points, bound '
        f'{report["max_drop"]:g}; {report["deploy_dir"]})',
        f'  wall time           {report["seconds"]["total"]:.1f} s',
        f'  report              {osp.join(report["work_dir"], "report.json")}',
        f'  deploy checkpoint   {report["deploy_checkpoint"]}',
        '=' * 64,
    ]
    return '\n'.join(lines)
