/* token_cli: the `parleyd token` subcommand (main.c: if argv[1] is "token", return
 * token_cli_main(argc - 1, argv + 1)). Exit status: 0 token printed, 1 configuration or key error, 2 usage.
 */
#ifndef PARLEY_AUTH_TOKEN_CLI_H
#define PARLEY_AUTH_TOKEN_CLI_H

int token_cli_main(int argc, char **argv);

#endif
