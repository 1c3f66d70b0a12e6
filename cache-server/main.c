#include <stdio.h>
int main(void) { puts("layercache-server: not built yet"); return 1; }
