/* libicl: train tiny GPT-style transformers on synthetic in-context-learning
 * data and probe what they learned. This umbrella header includes the whole
 * public API. */
#ifndef ICL_ICL_H
#define ICL_ICL_H

#include "icl/status.h"
#include "icl/rng.h"
#include "icl/config.h"
#include "icl/points.h"
#include "icl/model.h"
#include "icl/train.h"
#include "icl/checkpoint.h"
#include "icl/npy.h"
#include "icl/toy.h"
#include "icl/task.h"
#include "icl/baselines.h"
#include "icl/eval.h"
#include "icl/probe.h"
#include "icl/readout.h"
#include "icl/superposition.h"
#include "icl/lens.h"
#include "icl/task_vectors.h"
#include "icl/representations.h"
#include "icl/decodability.h"
#include "icl/rsa.h"
#include "icl/linear_probe.h"
#include "icl/attention_roles.h"
#include "icl/finetune.h"
#include "icl/analysis.h"
#include "icl/results.h"

#define ICL_VERSION_MAJOR 0
#define ICL_VERSION_MINOR 1
#define ICL_VERSION_PATCH 0
#define ICL_VERSION_STRING "0.1.0"

#endif
