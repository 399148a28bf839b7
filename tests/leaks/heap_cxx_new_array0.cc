/* leak-test: new T[0] of a T with a destructor keeps only a pointer one past its 8-byte block (the element count); held in a global it is reachable, dropped it is lost
 * expect: heap 1 drop_empty class=definitely bytes=8
 * exit: 0
 */
#include <cstdio>

struct Node {
    int v = 0;
    ~Node() { v = -1; }
};

/* volatile: stored for real, not optimised away. */
static Node *volatile kept;
static Node *volatile dropped;

extern "C" __attribute__((noinline)) void keep_empty()
{
    kept = new Node[0];
}

/* The planted leak: the only pointer is overwritten. */
extern "C" __attribute__((noinline)) void drop_empty()
{
    dropped = new Node[0];
    dropped = nullptr;
}

int main()
{
    keep_empty();
    drop_empty();
    std::printf("kept: %s\n", kept != nullptr ? "yes" : "no");
    return 0;
}
