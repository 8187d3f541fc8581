"""Names a layer or parameter may not have: the attributes of ``torch.nn.Module`` and of generated modules.

PyTorch keeps submodules and parameters in the same attribute namespace as its own methods and state, so a
layer named ``training``, ``forward`` or ``_modules`` cannot exist in an ``nn.Module`` (``add_module`` refuses
it). archdsl refuses such names in ``check`` already, with the spec location, so that whatever ``check``
accepts, ``build`` builds. The list is static (``check`` does not import torch); a test keeps it a superset of
the installed torch's attributes, and codegen checks against the live class as well.
"""

from __future__ import annotations

# dir(nn.Module) and the instance attributes nn.Module.__init__ sets (torch 2.13), minus dunders (all refused)
TORCH_MODULE_ATTRIBUTES = frozenset({
    'T_destination', '_apply', '_backward_hooks', '_backward_pre_hooks', '_buffers', '_call_impl',
    '_compiled_call_impl', '_forward_hooks', '_forward_hooks_always_called', '_forward_hooks_with_kwargs',
    '_forward_pre_hooks', '_forward_pre_hooks_with_kwargs', '_get_backward_hooks', '_get_backward_pre_hooks',
    '_get_name', '_is_full_backward_hook', '_load_from_state_dict', '_load_state_dict_post_hooks',
    '_load_state_dict_pre_hooks', '_maybe_warn_non_full_backward_hook', '_modules', '_named_members',
    '_non_persistent_buffers_set', '_parameters', '_register_load_state_dict_pre_hook',
    '_register_state_dict_hook', '_replicate_for_data_parallel', '_save_to_state_dict', '_slow_forward',
    '_state_dict_hooks', '_state_dict_pre_hooks', '_version', '_wrapped_call_impl', 'add_module', 'apply',
    'bfloat16', 'buffers', 'call_super_init', 'children', 'compile', 'cpu', 'cuda', 'double', 'dump_patches',
    'eval', 'extra_repr', 'float', 'forward', 'get_buffer', 'get_extra_state', 'get_parameter', 'get_submodule',
    'half', 'ipu', 'load_state_dict', 'modules', 'mtia', 'named_buffers', 'named_children', 'named_modules',
    'named_parameters', 'parameters', 'register_backward_hook', 'register_buffer', 'register_forward_hook',
    'register_forward_pre_hook', 'register_full_backward_hook', 'register_full_backward_pre_hook',
    'register_load_state_dict_post_hook', 'register_load_state_dict_pre_hook', 'register_module',
    'register_parameter', 'register_state_dict_post_hook', 'register_state_dict_pre_hook', 'requires_grad_',
    'set_extra_state', 'set_submodule', 'share_memory', 'state_dict', 'to', 'to_empty', 'train', 'training',
    'type', 'xpu', 'zero_grad'
})
GENERATED_ATTRIBUTES = frozenset({"archdsl_source", "archdsl_graph", "_input_spec", "reparameterize"})   # set by archdsl


def reserved_component(path: str) -> str | None:
    """The first component of a dotted module or parameter path that cannot be an nn.Module attribute name."""
    for part in path.split("."):
        if not part:
            return part
        if part in TORCH_MODULE_ATTRIBUTES or part in GENERATED_ATTRIBUTES or (
                part.startswith("__") and part.endswith("__")):
            return part
    return None
