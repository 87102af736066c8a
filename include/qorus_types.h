/*
 * qorus_types.h — the original Qorus-IA v2.0 split its API into qorus_types.h (constants, types)
 * and qorus.h (functions). qorus generates one header; this file keeps `#include "qorus_types.h"`
 * working for code written against the original.
 */
#ifndef QORUS_TYPES_H
#define QORUS_TYPES_H
#include "qorus.h"
#endif /* QORUS_TYPES_H */
