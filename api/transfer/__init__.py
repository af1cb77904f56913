"""Transfer processes at the control plane: the DSP routes a counterparty calls (`dsp_routes`),
the operator's routes (`management_routes`), the use cases both call (`service`) and the door
to the transfer workflows (`gateway`)."""
