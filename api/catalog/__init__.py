"""The catalog at the control plane: the DSP catalog routes (`dsp_routes`), the operator's
catalog tools (`management_routes`) and the per-app catalog service they share (`service`)."""
