/*
 * Scope internals shared with other core modules (shutdown).
 */
#ifndef STEWARD_SCOPE_INTERNAL_H
#define STEWARD_SCOPE_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "steward/scope.h"

/*
 * True if the live ledger record (@kind, @id) is part of the bookkeeping
 * of @s, of one of its descendants or of one of its ancestors: the scope
 * record, the struct, its name and its cancel eventfd. That is what a
 * closed scope still holds until its owner frees it (everything else it
 * held is gone once it finished), and what the scopes above it hold until
 * the root is freed. Not counted: anything else those ancestors hold.
 */
bool stw__scope_is_skeleton(stw_scope *s, int kind, uint64_t id);

#endif
