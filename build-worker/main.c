#include <stdio.h>
int main(void) { puts("layercache: not built yet"); return 1; }
