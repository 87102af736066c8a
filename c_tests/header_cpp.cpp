// The generated header must compile as C++ too, included twice in one translation unit.
#include "qorus.h"
#include "qorus.h"
#include "qorus_types.h"

static_assert(sizeof(q_tensor) == 128, "q_tensor size");
static_assert(alignof(q_tensor) == 64, "q_tensor alignment");
static_assert(sizeof(q_model_header) == 64, "q_model_header size");
static_assert(sizeof(q_block_q4_0) == 20, "q_block_q4_0 size");
static_assert(sizeof(q_generation_state) == 72, "q_generation_state size");

int qorus_cpp_uses_api() {
    q_context ctx = {};
    return q_init_memory(&ctx, "missing.qorus") == Q_ERR_FILE_OPEN ? 0 : 1;
}
