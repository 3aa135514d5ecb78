/* The SQLite side of reading a result row, shared by sqlite.c and the
 * fuzzer (fuzz/fuzz_store.c) so that the fuzzer checks the product's own
 * path: the row's text columns as SQLite renders them, then the shared
 * decoder (store.h). Kept out of store.h, which names no SQLite type. */
#ifndef WPOOL_STORE_SQLITE_ROW_H
#define WPOOL_STORE_SQLITE_ROW_H

#include <sqlite3.h>

#include "store/store.h"

/* Decodes the current row of st, whose first WP__RESULT_COLS columns are
 * those of wp__store_decode_result; returns what it returns. */
int wp__sqlite_decode_result(sqlite3_stmt *st, wp__outrec *out, char *err,
                             size_t errlen);

#endif
