# What every coordatt_mm config adds to the OpenMMLab recipe it extends.
custom_imports = dict(imports=['coordatt_mm'], allow_failed_imports=False)
# mmengine's Runner; on machines without CUDA it also trains with several processes (gloo)
runner_type = 'CPUDistributedRunner'
# fail at start if a training image or mask is missing; keep random states in checkpoints for
# exact resume. Configs append these to their recipe's custom_hooks.
coordatt_hooks = [dict(type='DatasetCheckHook'), dict(type='RNGStateHook')]
