/* Test fixture "fixture-crash-on-load": crash_verifier.c with a constructor that segfaults,
 * so merely dlopen-ing it kills the process that does. Kept in its own folder (hostile/) so
 * that tests loading the ordinary fixtures in process never touch it. */
#define CRASH_ON_LOAD 1
#include "../crash_verifier.c"
