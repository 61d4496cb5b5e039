/**
 * Synthetic single-lead ECG with exact beat times, after the dynamical model of McSharry et al.
 * (IEEE TBME 2003, "ECGSYN"): a point circles the unit limit cycle in the (x, y) plane at the
 * angular speed 2π/RR(t); each passage of the angles of the P, Q, R, S and T events pulls z by a
 * Gaussian; z relaxes to a respiratory baseline. RR(t) follows a bimodal spectrum (Mayer waves
 * near 0.1 Hz, respiratory sinus arrhythmia near 0.25 Hz). The R peak of each beat is where the
 * trajectory crosses the R angle (0), refined to the largest clean sample nearby, so the ground
 * truth is exact to one sample. Noise, baseline wander and mains hum are added afterwards.
 */

export interface EcgOptions {
  durationS: number;
  fs: number;
  meanHr: number;
  hrStd: number;
  /** LF/HF power ratio of the RR spectrum. */
  lfHf: number;
  /** Gaussian noise, mV (standard deviation). */
  noiseMv: number;
  /** Baseline wander amplitude, mV. */
  wanderMv: number;
  /** Mains interference amplitude, mV (50 Hz). */
  humMv: number;
  /** Muscle-noise bursts per minute (about 1 s each). */
  burstsPerMinute: number;
  /** Standard deviation of the noise inside a burst, mV. */
  burstMv: number;
  /** Overall amplitude scale (1 = R about 1.2 mV). */
  amplitude: number;
  seed: number;
}

export interface SyntheticEcg {
  fs: number;
  /** mV. */
  signal: Float64Array;
  /** Sample index of every R peak. */
  rPeaks: number[];
}

/** A seeded normal and uniform generator (mulberry32 + Box-Muller). */
export function seededRandom(seed: number): { uniform(): number; normal(): number } {
  let state = seed >>> 0;
  const uniform = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  let spare: number | null = null;
  const normal = () => {
    if (spare !== null) {
      const value = spare;
      spare = null;
      return value;
    }
    let u = 0;
    while (u === 0) u = uniform();
    const v = uniform();
    const radius = Math.sqrt(-2 * Math.log(u));
    spare = radius * Math.sin(2 * Math.PI * v);
    return radius * Math.cos(2 * Math.PI * v);
  };
  return { uniform, normal };
}

/** RR interval (s) as a function of time: mean plus a sum of sinusoids shaped by the bimodal spectrum. */
function rrProcess(options: EcgOptions, random: ReturnType<typeof seededRandom>): (t: number) => number {
  const f1 = 0.1;
  const f2 = 0.25;
  const c1 = 0.01;
  const c2 = 0.01;
  const sigma2 = 1;
  const sigma1 = Math.sqrt(options.lfHf);
  const frequencies: number[] = [];
  const amplitudes: number[] = [];
  const phases: number[] = [];
  for (let f = 0.005; f <= 0.5; f += 0.0025) {
    const power = (sigma1 ** 2 / Math.sqrt(2 * Math.PI * c1 ** 2)) * Math.exp(-((f - f1) ** 2) / (2 * c1 ** 2)) + (sigma2 ** 2 / Math.sqrt(2 * Math.PI * c2 ** 2)) * Math.exp(-((f - f2) ** 2) / (2 * c2 ** 2));
    frequencies.push(f);
    amplitudes.push(Math.sqrt(power));
    phases.push(2 * Math.PI * random.uniform());
  }
  const raw = (t: number) => {
    let sum = 0;
    for (let k = 0; k < frequencies.length; k++) sum += amplitudes[k] * Math.cos(2 * Math.PI * frequencies[k] * t + phases[k]);
    return sum;
  };
  // Scale to the requested standard deviation of RR (from that of the heart rate).
  let mean = 0;
  let square = 0;
  const probes = 2000;
  const span = Math.max(options.durationS, 60);
  for (let i = 0; i < probes; i++) {
    const value = raw((i / probes) * span);
    mean += value;
    square += value * value;
  }
  mean /= probes;
  const std = Math.sqrt(Math.max(square / probes - mean * mean, 1e-12));
  const rrMean = 60 / options.meanHr;
  const rrStd = (60 * options.hrStd) / options.meanHr ** 2;
  // Tabulated at 100 Hz and interpolated: RR changes slowly, and the integrator asks often.
  const rate = 100;
  const table = new Float64Array(Math.ceil((options.durationS + 2) * rate) + 1);
  for (let i = 0; i < table.length; i++) table[i] = rrMean + ((raw(i / rate) - mean) / std) * rrStd;
  return (t: number) => {
    const position = Math.min(Math.max(t * rate, 0), table.length - 1.000001);
    const index = Math.floor(position);
    const fraction = position - index;
    return table[index] * (1 - fraction) + table[index + 1] * fraction;
  };
}

export function generateEcg(options: EcgOptions): SyntheticEcg {
  const random = seededRandom(options.seed);
  const rr = rrProcess(options, random);
  const hrFactor = Math.sqrt(options.meanHr / 60);
  const hrFactor2 = Math.sqrt(hrFactor);
  const degrees = Math.PI / 180;
  const theta = [-70 * degrees * hrFactor2, -15 * degrees * hrFactor, 0, 15 * degrees * hrFactor, 100 * degrees * hrFactor2];
  const a = [1.2, -5, 30, -7.5, 0.75];
  const b = [0.25 * hrFactor, 0.1 * hrFactor, 0.1 * hrFactor, 0.1 * hrFactor, 0.4 * hrFactor2];
  const respiration = 0.25;

  const oversample = 2;
  const dt = 1 / (options.fs * oversample);
  const steps = Math.round(options.durationS * options.fs * oversample);
  const derivative = (t: number, x: number, y: number, z: number): [number, number, number] => {
    const alpha = 1 - Math.sqrt(x * x + y * y);
    const omega = (2 * Math.PI) / rr(t);
    const angle = Math.atan2(y, x);
    let dz = 0;
    for (let i = 0; i < 5; i++) {
      let delta = angle - theta[i];
      delta -= 2 * Math.PI * Math.round(delta / (2 * Math.PI));
      dz -= a[i] * delta * Math.exp(-(delta * delta) / (2 * b[i] * b[i]));
    }
    const z0 = 0.005 * Math.sin(2 * Math.PI * respiration * t);
    return [alpha * x - omega * y, alpha * y + omega * x, dz - (z - z0)];
  };

  const clean = new Float64Array(Math.round(options.durationS * options.fs));
  const crossings: number[] = [];
  let x = -1;
  let y = 0;
  let z = 0;
  for (let step = 0; step < steps; step++) {
    const t = step * dt;
    if (step % oversample === 0) clean[step / oversample] = z;
    const [k1x, k1y, k1z] = derivative(t, x, y, z);
    const [k2x, k2y, k2z] = derivative(t + dt / 2, x + (dt / 2) * k1x, y + (dt / 2) * k1y, z + (dt / 2) * k1z);
    const [k3x, k3y, k3z] = derivative(t + dt / 2, x + (dt / 2) * k2x, y + (dt / 2) * k2y, z + (dt / 2) * k2z);
    const [k4x, k4y, k4z] = derivative(t + dt, x + dt * k3x, y + dt * k3y, z + dt * k3z);
    const nextY = y + (dt / 6) * (k1y + 2 * k2y + 2 * k3y + k4y);
    const nextX = x + (dt / 6) * (k1x + 2 * k2x + 2 * k3x + k4x);
    // The R angle (0) is crossed when y goes from negative to non-negative on the x > 0 side.
    if (y < 0 && nextY >= 0 && nextX > 0) crossings.push((t + dt * (-y / (nextY - y))) * options.fs);
    x = nextX;
    y = nextY;
    z += (dt / 6) * (k1z + 2 * k2z + 2 * k3z + k4z);
  }

  // Scale to about -0.4 .. 1.2 mV as ECGSYN does, times the record's amplitude.
  let min = Infinity;
  let max = -Infinity;
  for (const value of clean) {
    if (value < min) min = value;
    if (value > max) max = value;
  }
  for (let i = 0; i < clean.length; i++) clean[i] = (((clean[i] - min) * 1.6) / (max - min) - 0.4) * options.amplitude;

  const window = Math.round(0.05 * options.fs);
  const rPeaks: number[] = [];
  for (const crossing of crossings) {
    const center = Math.round(crossing);
    let best = -1;
    for (let i = Math.max(0, center - window); i <= Math.min(clean.length - 1, center + window); i++) if (best < 0 || clean[i] > clean[best]) best = i;
    // Beats cut by the record's edges are left out of the truth.
    if (best > window && best < clean.length - window - 1) rPeaks.push(best);
  }

  const signal = new Float64Array(clean.length);
  const wanderPhase = 2 * Math.PI * random.uniform();
  const humPhase = 2 * Math.PI * random.uniform();
  // Muscle noise: bursts of about a second with a raised-cosine envelope.
  const envelope = new Float64Array(clean.length);
  const bursts = Math.round((options.burstsPerMinute * options.durationS) / 60);
  for (let b = 0; b < bursts; b++) {
    const centre = random.uniform() * clean.length;
    const half = (0.4 + 0.4 * random.uniform()) * options.fs;
    for (let i = Math.max(0, Math.floor(centre - half)); i < Math.min(clean.length, Math.ceil(centre + half)); i++) envelope[i] = Math.max(envelope[i], 0.5 * (1 + Math.cos((Math.PI * (i - centre)) / half)));
  }
  for (let i = 0; i < clean.length; i++) {
    const t = i / options.fs;
    signal[i] =
      clean[i] +
      options.wanderMv * Math.sin(2 * Math.PI * 0.33 * t + wanderPhase) +
      0.5 * options.wanderMv * Math.sin(2 * Math.PI * 0.07 * t) +
      options.humMv * Math.sin(2 * Math.PI * 50 * t + humPhase) +
      options.noiseMv * random.normal() +
      envelope[i] * options.burstMv * random.normal();
  }
  return { fs: options.fs, signal, rPeaks };
}

/** Record-to-record variety from one seed: heart rate, variability, noise, amplitude. */
export function ecgOptionsFor(seed: number, durationS: number, fs = 360): EcgOptions {
  const random = seededRandom(seed * 7919 + 17);
  return {
    durationS,
    fs,
    meanHr: 55 + 45 * random.uniform(),
    hrStd: 1 + 4 * random.uniform(),
    lfHf: 0.5 + random.uniform(),
    noiseMv: 0.01 + 0.04 * random.uniform(),
    wanderMv: 0.05 + 0.25 * random.uniform(),
    humMv: 0.02 * random.uniform(),
    burstsPerMinute: 2 + 4 * random.uniform(),
    burstMv: 0.05 + 0.15 * random.uniform(),
    amplitude: 0.7 + 0.8 * random.uniform(),
    seed,
  };
}
