#include <stdio.h>
#include <string.h>

#include "version.h"

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        printf("hello %s\n", HELLO_VERSION);
        return 0;
    }
    printf("hello, world\n");
    return 0;
}
