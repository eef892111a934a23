;; A KNN feature bank read from its float16 file, in WebAssembly: every scoring shard reads one at start-up, and in
;; JS (a table lookup a value, then the checks a value) a cold thread took 35–60 ms for the built-in pair's 2.56 M.
;;
;; decode: float16 bit patterns → float32, exactly (every float16 is a float32): the 15 bits below the sign shifted
;; into a float32's place and scaled by 2^112 (a power of two: no rounding, subnormals included), exponent 31
;; (infinity, NaN) set to float32's 255; the sign put back.
;; rowStats: each row's sum of squares (double precision), the index of the first value that is not finite, and
;; the rows whose length is at least 1e-6 added to a per-dimension sum (bankProblem's mean direction), in one pass.
;; Both work on a chunk of the bank at a time (bankWasm.ts): the memory stays ~2 MB however large the bank.
;;
;; Compiled by scripts/wasmKernels.mjs into bankWasm.generated.ts; do not hand-edit that file.
(module
  (memory (export "memory") 1)

  ;; src: n float16 values (2 bytes each, little-endian); out: n float32. Four at a time (one a 32-bit lane),
  ;; written out in full: a call a vector cost the baseline compiler's first runs more than the arithmetic.
  (func (export "decode") (param $src i32) (param $n i32) (param $out i32)
    (local $i i32) (local $n4 i32) (local $h v128) (local $m v128) (local $h32 i32) (local $s i32)
    (local.set $n4 (i32.and (local.get $n) (i32.const -4)))
    (block $vecDone
      (loop $vec
        (br_if $vecDone (i32.ge_u (local.get $i) (local.get $n4)))
        (local.set $h (v128.load64_zero (i32.add (local.get $src) (i32.shl (local.get $i) (i32.const 1)))))
        (local.set $h (i32x4.extend_low_i16x8_u (local.get $h)))
        (local.set $m (i32x4.shl (v128.and (local.get $h) (i32x4.splat (i32.const 0x7fff))) (i32.const 13)))
        (v128.store (i32.add (local.get $out) (i32.shl (local.get $i) (i32.const 2)))
          (v128.or
            (v128.bitselect
              (v128.or (local.get $m) (i32x4.splat (i32.const 0x7f800000)))
              (f32x4.mul (local.get $m) (f32x4.splat (f32.const 0x1p112)))
              (i32x4.eq (v128.and (local.get $h) (i32x4.splat (i32.const 0x7c00))) (i32x4.splat (i32.const 0x7c00))))
            (i32x4.shl (v128.and (local.get $h) (i32x4.splat (i32.const 0x8000))) (i32.const 16))))
        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (br $vec)))
    (block $tailDone
      (loop $tail
        (br_if $tailDone (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $h32 (i32.load16_u (i32.add (local.get $src) (i32.shl (local.get $i) (i32.const 1)))))
        (local.set $s (i32.shl (i32.and (local.get $h32) (i32.const 0x7fff)) (i32.const 13)))
        (local.set $s
          (select
            (i32.or (local.get $s) (i32.const 0x7f800000))
            (i32.reinterpret_f32 (f32.mul (f32.reinterpret_i32 (local.get $s)) (f32.const 0x1p112)))
            (i32.eq (i32.and (local.get $h32) (i32.const 0x7c00)) (i32.const 0x7c00))))
        (i32.store (i32.add (local.get $out) (i32.shl (local.get $i) (i32.const 2)))
          (i32.or (local.get $s) (i32.shl (i32.and (local.get $h32) (i32.const 0x8000)) (i32.const 16))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $tail))))

  ;; bank: rows × dims float32; norms2: rows float64 (written); sum: dims float64 (added to, in row order, by the
  ;; rows whose length √norms2 is at least 1e-6). Returns the index of the first value that is not finite (its
  ;; exponent all ones), or −1.
  (func (export "rowStats") (param $bank i32) (param $rows i32) (param $dims i32) (param $norms2 i32) (param $mean i32) (result i32)
    (local $r i32) (local $j i32) (local $at i32) (local $row i32) (local $to i32) (local $v f32) (local $sum f64) (local $bad i32)
    (local.set $bad (i32.const -1))
    (block $rowsDone
      (loop $rowsLoop
        (br_if $rowsDone (i32.ge_u (local.get $r) (local.get $rows)))
        (local.set $row (i32.add (local.get $bank) (i32.shl (i32.mul (local.get $r) (local.get $dims)) (i32.const 2))))
        (local.set $sum (f64.const 0))
        (local.set $j (i32.const 0))
        (block $colsDone
          (loop $cols
            (br_if $colsDone (i32.ge_u (local.get $j) (local.get $dims)))
            (local.set $v (f32.load (i32.add (local.get $row) (i32.shl (local.get $j) (i32.const 2)))))
            (if (i32.and
                  (i32.lt_s (local.get $bad) (i32.const 0))
                  (i32.eq (i32.and (i32.reinterpret_f32 (local.get $v)) (i32.const 0x7f800000)) (i32.const 0x7f800000)))
              (then (local.set $bad (i32.add (i32.mul (local.get $r) (local.get $dims)) (local.get $j)))))
            (local.set $sum (f64.add (local.get $sum) (f64.mul (f64.promote_f32 (local.get $v)) (f64.promote_f32 (local.get $v)))))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $cols)))
        (f64.store (i32.add (local.get $norms2) (i32.shl (local.get $r) (i32.const 3))) (local.get $sum))
        (if (f64.ge (f64.sqrt (local.get $sum)) (f64.const 1e-6))
          (then
            (local.set $j (i32.const 0))
            (block $addDone
              (loop $add
                (br_if $addDone (i32.ge_u (local.get $j) (local.get $dims)))
                (local.set $to (i32.add (local.get $mean) (i32.shl (local.get $j) (i32.const 3))))
                (f64.store (local.get $to)
                  (f64.add (f64.load (local.get $to)) (f64.promote_f32 (f32.load (i32.add (local.get $row) (i32.shl (local.get $j) (i32.const 2)))))))
                (local.set $j (i32.add (local.get $j) (i32.const 1)))
                (br $add)))))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $rowsLoop)))
    (local.get $bad))
)
