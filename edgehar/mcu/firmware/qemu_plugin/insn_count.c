/* QEMU TCG plugin: count executed guest instructions and log the count at marker addresses.
 *
 * Every translated instruction gets an inline "add 1" to one 64-bit counter (exact, no
 * sampling). Instructions at a marker address also get a callback that appends
 * "<letter> <count>" to the output file, so the runner can bracket Invoke() and each op.
 * Arguments (QEMU 7.2 `-plugin lib.so,key=value,...`):
 *   out=FILE        where the marker log goes
 *   mark=L:ADDR     one per marker: a letter and the function's address (hex, Thumb bit clear)
 * Built with the host gcc against QEMU's qemu-plugin.h (GPL-2.0-or-later): a separate program.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qemu-plugin.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

#define MAX_MARKS 8

static uint64_t executed;          /* single vCPU: the M-profile boards have one */
static uint64_t mark_addr[MAX_MARKS];
static char mark_letter[MAX_MARKS];
static int n_marks;
static FILE *out;

static void on_mark(unsigned int vcpu, void *letter)
{
    fprintf(out, "%c %" PRIu64 "\n", (char)(uintptr_t)letter, executed);
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    size_t n = qemu_plugin_tb_n_insns(tb);
    for (size_t i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64,
                                                   &executed, 1);
        uint64_t va = qemu_plugin_insn_vaddr(insn);
        for (int m = 0; m < n_marks; m++) {
            if (va == mark_addr[m]) {
                qemu_plugin_register_vcpu_insn_exec_cb(insn, on_mark, QEMU_PLUGIN_CB_NO_REGS,
                                                       (void *)(uintptr_t)mark_letter[m]);
            }
        }
    }
}

static void on_qemu_exit(qemu_plugin_id_t id, void *unused)
{
    fprintf(out, "T %" PRIu64 "\n", executed);
    fclose(out);
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
                                           int argc, char **argv)
{
    const char *path = NULL;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "out=", 4) == 0) {
            path = argv[i] + 4;
        } else if (strncmp(argv[i], "mark=", 5) == 0 && argv[i][5] && argv[i][6] == ':' &&
                   n_marks < MAX_MARKS) {
            mark_letter[n_marks] = argv[i][5];
            mark_addr[n_marks++] = strtoull(argv[i] + 7, NULL, 16);
        } else {
            fprintf(stderr, "insn_count: unknown argument %s\n", argv[i]);
            return -1;
        }
    }
    out = fopen(path ? path : "insn_count.log", "w");
    if (!out) {
        return -1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, on_qemu_exit, NULL);
    return 0;
}
