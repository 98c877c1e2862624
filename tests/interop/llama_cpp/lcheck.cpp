// lcheck: tiny driver over the prebuilt libllama shipped in @node-llama-cpp/linux-x64.
//   lcheck info   MODEL
//   lcheck tok    MODEL TEXT            -> token ids (no BOS/EOS added, no special parsing)
//   lcheck gen    MODEL PROMPT N        -> greedy ids of N new tokens (does NOT stop at EOG; flags it)
//   lcheck logits MODEL PROMPT OUT      -> last-position logits, one per line (%.9g)
//   lcheck ppl    MODEL FILE WINDOW [MAXTOK] [BOS] [SCORE_FROM]
//        MCW's scheme: non-overlapping windows of WINDOW tokens, every token scored once
//        except a window's first one; prints mean NLL and perplexity. BOS=1 prepends BOS
//        to each window (not used for the fortunes models, which have none).
//        SCORE_FROM=W/2 reproduces llama-perplexity (scores each full chunk's second half).
#include "llama.h"
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

static int g_verbose = 1;
static void log_cb(ggml_log_level level, const char * text, void *) {
    // show everything at WARN/ERROR always; INFO only when LCHECK_VERBOSE=1
    if (level == GGML_LOG_LEVEL_WARN || level == GGML_LOG_LEVEL_ERROR || g_verbose > 1) {
        fprintf(stderr, "%s", text);
    } else if (level == GGML_LOG_LEVEL_CONT && g_verbose > 1) {
        fprintf(stderr, "%s", text);
    }
}

static std::vector<llama_token> tokenize(const llama_vocab * vocab, const std::string & s, bool add_special) {
    int n = -llama_tokenize(vocab, s.data(), (int32_t) s.size(), nullptr, 0, add_special, false);
    std::vector<llama_token> out(n);
    int m = llama_tokenize(vocab, s.data(), (int32_t) s.size(), out.data(), n, add_special, false);
    if (m != n) { fprintf(stderr, "tokenize mismatch %d %d\n", n, m); exit(1); }
    return out;
}

static std::string piece(const llama_vocab * vocab, llama_token t) {
    char buf[256];
    int n = llama_token_to_piece(vocab, t, buf, sizeof(buf), 0, true);
    return n < 0 ? std::string("<?>") : std::string(buf, n);
}

static llama_context * make_ctx(llama_model * model, int n_ctx, bool all_logits) {
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = n_ctx;
    cp.n_batch = n_ctx;
    cp.n_ubatch = n_ctx;
    int nt = getenv("LCHECK_THREADS") ? atoi(getenv("LCHECK_THREADS")) : 2;
    cp.n_threads = nt;
    cp.n_threads_batch = nt;
    (void) all_logits;
    // LCHECK_PRECISE=1: f32 KV cache and no flash attention (llama.cpp's defaults are f16 KV + FA auto = on for CPU)
    if (getenv("LCHECK_PRECISE") && atoi(getenv("LCHECK_PRECISE"))) {
        cp.type_k = GGML_TYPE_F32;
        cp.type_v = GGML_TYPE_F32;
        cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    }
    llama_context * ctx = llama_init_from_model(model, cp);
    if (!ctx) { fprintf(stderr, "llama_init_from_model failed\n"); exit(1); }
    return ctx;
}

static void decode_all(llama_context * ctx, const std::vector<llama_token> & toks, int pos0, bool all_logits) {
    llama_batch b = llama_batch_init((int32_t) toks.size(), 0, 1);
    for (size_t i = 0; i < toks.size(); i++) {
        b.token[i] = toks[i];
        b.pos[i] = pos0 + (int) i;
        b.n_seq_id[i] = 1;
        b.seq_id[i][0] = 0;
        b.logits[i] = all_logits || i + 1 == toks.size();
    }
    b.n_tokens = (int32_t) toks.size();
    int rc = llama_decode(ctx, b);
    llama_batch_free(b);
    if (rc != 0) { fprintf(stderr, "llama_decode rc=%d\n", rc); exit(1); }
}

int main(int argc, char ** argv) {
    if (argc < 3) { fprintf(stderr, "usage: see source\n"); return 2; }
    if (getenv("LCHECK_VERBOSE")) g_verbose = atoi(getenv("LCHECK_VERBOSE"));
    llama_log_set(log_cb, nullptr);
    llama_backend_init();
    ggml_backend_load_all();
    std::string mode = argv[1];
    llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    llama_model * model = llama_model_load_from_file(argv[2], mp);
    if (!model) { fprintf(stderr, "LOAD FAILED: %s\n", argv[2]); return 1; }
    const llama_vocab * vocab = llama_model_get_vocab(model);
    const int n_vocab = llama_vocab_n_tokens(vocab);

    if (mode == "info") {
        char desc[256];
        llama_model_desc(model, desc, sizeof(desc));
        printf("desc=%s n_vocab=%d n_ctx_train=%d n_params=%llu size=%llu\n", desc, n_vocab,
               llama_model_n_ctx_train(model), (unsigned long long) llama_model_n_params(model),
               (unsigned long long) llama_model_size(model));
        printf("vocab_type=%d bos=%d eos=%d eot=%d add_bos=%d add_eos=%d\n", (int) llama_vocab_type(vocab),
               llama_vocab_bos(vocab), llama_vocab_eos(vocab), llama_vocab_eot(vocab),
               (int) llama_vocab_get_add_bos(vocab), (int) llama_vocab_get_add_eos(vocab));
        printf("eog ids:");
        for (int t = 0; t < n_vocab; t++) if (llama_vocab_is_eog(vocab, t)) printf(" %d", t);
        printf("\n");
        char buf[512];
        const char * keys[] = {"tokenizer.ggml.pre", "general.file_type", "llama.rope.scaling.type",
                               "llama.rope.freq_base", "llama.rope.scaling.factor"};
        for (const char * k : keys) {
            if (llama_model_meta_val_str(model, k, buf, sizeof(buf)) >= 0) printf("%s=%s\n", k, buf);
        }
        llama_context * ctx = make_ctx(model, 64, false);
        llama_free(ctx);
    } else if (mode == "tok") {
        auto t = tokenize(vocab, argv[3], false);
        for (size_t i = 0; i < t.size(); i++) printf("%s%d", i ? " " : "", t[i]);
        printf("\n");
    } else if (mode == "gen" || mode == "logits") {
        std::string prompt = argv[3];
        int n_gen = mode == "gen" ? atoi(argv[4]) : 0;
        auto toks = tokenize(vocab, prompt, false);
        bool bos = getenv("LCHECK_BOS") && atoi(getenv("LCHECK_BOS"));
        if (bos) toks.insert(toks.begin(), llama_vocab_bos(vocab));
        int n_ctx = (int) toks.size() + n_gen + 8;
        llama_context * ctx = make_ctx(model, n_ctx, false);
        decode_all(ctx, toks, 0, false);
        if (mode == "logits") {
            const float * lg = llama_get_logits_ith(ctx, -1);
            FILE * f = fopen(argv[4], "w");
            for (int i = 0; i < n_vocab; i++) fprintf(f, "%.9g\n", lg[i]);
            fclose(f);
        } else {
            int pos = (int) toks.size();
            std::string text;
            int first_eog = -1;
            for (int k = 0; k < n_gen; k++) {
                const float * lg = llama_get_logits_ith(ctx, -1);
                int best = 0;
                for (int i = 1; i < n_vocab; i++) if (lg[i] > lg[best]) best = i;
                if (first_eog < 0 && llama_vocab_is_eog(vocab, best)) first_eog = k;
                printf("%s%d", k ? " " : "", best);
                text += piece(vocab, best);
                decode_all(ctx, {best}, pos++, false);
            }
            printf("\n");
            fprintf(stderr, "text=[%s] first_eog_at=%d\n", text.c_str(), first_eog);
        }
        llama_free(ctx);
    } else if (mode == "ppl") {
        std::ifstream in(argv[3], std::ios::binary);
        std::stringstream ss; ss << in.rdbuf();
        int W = atoi(argv[4]);
        long maxtok = argc > 5 ? atol(argv[5]) : 0;
        bool bos = argc > 6 && atoi(argv[6]);
        size_t score_from = argc > 7 ? (size_t) atoi(argv[7]) : 1;  // >1: llama-perplexity's scheme, full windows only
        auto toks = tokenize(vocab, ss.str(), false);
        if (maxtok > 0 && (long) toks.size() > maxtok) toks.resize(maxtok);
        llama_context * ctx = make_ctx(model, W + (bos ? 1 : 0), true);
        double nll = 0; long scored = 0;
        for (size_t s = 0; s < toks.size(); s += W) {
            size_t e = std::min(toks.size(), s + W);
            if (score_from > 1 && e - s < (size_t) W) break;
            std::vector<llama_token> win(toks.begin() + s, toks.begin() + e);
            if (bos) win.insert(win.begin(), llama_vocab_bos(vocab));
            llama_memory_clear(llama_get_memory(ctx), true);
            decode_all(ctx, win, 0, true);
            size_t off = bos ? 1 : 0;
            for (size_t j = score_from + off; j < win.size(); j++) {  // a window's first token is never scored
                const float * lg = llama_get_logits_ith(ctx, (int32_t) j - 1);
                double mx = lg[0];
                for (int i = 1; i < n_vocab; i++) mx = std::max(mx, (double) lg[i]);
                double se = 0;
                for (int i = 0; i < n_vocab; i++) se += std::exp((double) lg[i] - mx);
                nll += (mx + std::log(se)) - lg[win[j]];
                scored++;
            }
        }
        printf("tokens=%zu scored=%ld window=%d nll=%.6f ppl=%.4f\n", toks.size(), scored, W, nll / scored,
               std::exp(nll / scored));
        llama_free(ctx);
    }
    llama_model_free(model);
    return 0;
}
