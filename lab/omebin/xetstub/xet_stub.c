/*
 * Stand-in for OME's Rust library libxet (pkg/xet, crate ome-xet-binding), so that
 * github.com/sgl-project/ome/cmd/manager links without a Rust toolchain.
 *
 * Why: cmd/manager imports pkg/modelagent (through the BaseModel controller), which imports
 * the cgo package pkg/xet, linked with -lxet. That crate depends on git crates from
 * github.com/huggingface/xet-core, which cannot be fetched here, and pkg/xet has no non-cgo
 * fallback. The manager itself never downloads model weights: the BaseModel controller uses
 * only pkg/modelagent's types, and pkg/xet's only caller is modelagent's Gopher, which only
 * cmd/model-agent (the DaemonSet that downloads weights) creates. So the controller never reaches
 * these entry points: each implements a function declared in pkg/xet/xet.h and fails with an
 * error, so a call would surface as a clean Go error ("xet is not available in this build"),
 * never as a crash or a fake success.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "xet.h"

#define XET_STUB_UNKNOWN 99 /* XetErrorCode::Unknown, as the Rust library uses for uncategorised failures */

static char *dup_string(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

static XetError *stub_error(const char *what) {
    XetError *err = malloc(sizeof *err);
    if (!err) return NULL; /* out of memory: nothing better to report */
    err->code = XET_STUB_UNKNOWN;
    err->message = dup_string("xet is not available in this build (lab stub for libxet)");
    err->details = dup_string(what);
    return err;
}

/* Link-time version check referenced by pkg/xet/xet.go. */
void xet_version_1_0_0(void) {}

/* NULL makes pkg/xet's NewClient return "failed to create xet client". */
XetClient *xet_client_new(const XetConfig *config) {
    (void)config;
    return NULL;
}

void xet_client_free(XetClient *client) { (void)client; }

XetError *xet_client_set_progress_callback(XetClient *client, XetProgressCallback callback, void *user_data,
                                           uint32_t throttle_ms) {
    (void)client; (void)callback; (void)user_data; (void)throttle_ms;
    return stub_error("xet_client_set_progress_callback");
}

XetError *xet_list_files(XetClient *client, const char *repo_id, const char *revision, XetFileList **out_files) {
    (void)client; (void)repo_id; (void)revision;
    if (out_files) *out_files = NULL;
    return stub_error("xet_list_files");
}

XetError *xet_download_file(XetClient *client, const XetDownloadRequest *request,
                            const XetCancellationToken *cancel_token, char **out_path) {
    (void)client; (void)request; (void)cancel_token;
    if (out_path) *out_path = NULL;
    return stub_error("xet_download_file");
}

XetError *xet_download_snapshot(XetClient *client, const char *repo_id, const char *repo_type, const char *revision,
                                const char *local_dir, const XetCancellationToken *cancel_token, char **out_path) {
    (void)client; (void)repo_id; (void)repo_type; (void)revision; (void)local_dir; (void)cancel_token;
    if (out_path) *out_path = NULL;
    return stub_error("xet_download_snapshot");
}

void xet_free_error(XetError *err) {
    if (!err) return;
    free(err->message);
    free(err->details);
    free(err);
}

void xet_free_file_list(XetFileList *list) {
    if (!list) return;
    for (size_t i = 0; i < list->count; i++) {
        free(list->files[i].path);
        free(list->files[i].hash);
    }
    free(list->files);
    free(list);
}

void xet_free_string(char *str) { free(str); }
