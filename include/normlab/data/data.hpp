// normlab/data/data.hpp — data for language-model training: the byte
// tokenizer, text corpora (files, directories, the fortunes database), a
// deterministic train/validation split, seeded (B, T) window batches with
// savable state, fixed evaluation batches, and a synthetic toy corpus.
//
//   TextCorpus corpus = TextCorpus::from_path("notes/");        // or load_default_corpus()
//   TrainValSplit split = split_train_val(corpus.size(), {.val_fraction = 0.1});
//   WindowSampler train(corpus, split.train, /*B=*/16, /*T=*/64, /*seed=*/1);
//   Batch<Cpu> b = train.next();                    // b.tokens, b.targets: (16, 64)
//   SamplerState saved = train.state();             // store with the checkpoint
//   EvalBatches val(corpus, split.val, 16, 64);     // val.batch(i), i < val.num_batches()
#pragma once

#include "normlab/data/corpus.hpp"
#include "normlab/data/sampler.hpp"
#include "normlab/data/split.hpp"
#include "normlab/data/synthetic.hpp"
#include "normlab/data/tokenizer.hpp"
