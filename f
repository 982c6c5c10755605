t
t
t
t
