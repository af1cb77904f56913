# State written under `module.stack` (an environment root calling this module) names the same
# resources as these module calls, so a plan over it moves addresses and changes nothing
# (decision 0027).
moved {
  from = module.stack.module.namespace
  to   = module.namespace
}

moved {
  from = module.stack.module.temporal_namespace
  to   = module.temporal_namespace
}

moved {
  from = module.stack.module.postgres
  to   = module.postgres
}

moved {
  from = module.stack.module.valkey
  to   = module.valkey
}

moved {
  from = module.stack.module.temporal
  to   = module.temporal
}

moved {
  from = module.stack.module.connector
  to   = module.connector
}
