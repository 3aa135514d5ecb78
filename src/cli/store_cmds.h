/* The wpool commands of the durable stores (src/store):
 *   wpool results  --state FILE | --db URL   every final result, in ID order
 *   wpool migrate  --db URL                  create or upgrade the schema
 *   wpool enqueue  --db URL [--queue NAME] [FILE...]
 *   wpool status   --db URL [--queue NAME]
 * (`wpool work` lives in main.c: it shares the fetch options and engine.)
 * Each returns the process exit status. */
#ifndef WPOOL_CLI_STORE_CMDS_H
#define WPOOL_CLI_STORE_CMDS_H

int wp__cmd_results(int argc, char **argv);
int wp__cmd_migrate(int argc, char **argv);
int wp__cmd_enqueue(int argc, char **argv);
int wp__cmd_status(int argc, char **argv);

#endif
