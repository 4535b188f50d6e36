/* Test plugin without a parley_plugin symbol: must be refused. */
int parley_plugin_typo = 1;
